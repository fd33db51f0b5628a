"""The `saddles` command line: a thin typer layer over the library.

Each command lives in its own module and registers itself on ``app`` when imported. Commands
that need no model (``topology``) must not import torch: heavy imports happen inside command
bodies, so ``saddles topology`` starts fast.
"""

import typer

app = typer.Typer(
    help="Loss landscapes as numbers: sample, merge trees, persistence and curvature.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command modules (each registers its commands on `app`).
from saddles.cli import experiment  # noqa: E402,F401
from saddles.cli import topology  # noqa: E402,F401
from saddles.cli import run  # noqa: E402,F401
from saddles.cli import landscape  # noqa: E402,F401
from saddles.cli import hessian  # noqa: E402,F401


def main() -> None:
    """Entry point of the `saddles` console script."""
    app()
