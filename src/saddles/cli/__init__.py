"""The `saddles` command line: a thin typer layer over the library.

Each command lives in its own module and registers itself on ``app`` when imported. Commands
that need no model (``topology``) must not import torch: heavy imports happen inside command
bodies, so ``saddles topology`` starts fast.
"""

import functools
import os

import click
import typer

app = typer.Typer(
    help="Loss landscapes as numbers: sample, merge trees, persistence and curvature.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def friendly_errors(command):
    """Show the library's errors about bad input as one line (``error: ...``, exit status 1)
    instead of a traceback; ``SADDLES_DEBUG=1`` shows the traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.exceptions.Abort):
            raise  # the CLI's own ways out (they subclass RuntimeError)
        except (ValueError, TypeError, KeyError, FileNotFoundError, FileExistsError,
                RuntimeError) as exc:  # fmt: skip
            if os.environ.get("SADDLES_DEBUG"):
                raise
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(1) from exc

    return wrapper


# Command modules (each registers its commands on `app`).
from saddles.cli import experiment  # noqa: E402,F401
from saddles.cli import topology  # noqa: E402,F401
from saddles.cli import run  # noqa: E402,F401
from saddles.cli import landscape  # noqa: E402,F401
from saddles.cli import hessian  # noqa: E402,F401
from saddles.cli import export  # noqa: E402,F401


def main() -> None:
    """Entry point of the `saddles` console script."""
    app()
