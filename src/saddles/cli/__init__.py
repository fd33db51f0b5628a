"""The `saddles` command line: a thin typer layer over the library.

Each command lives in its own module and registers itself on ``app`` when imported. Commands
that need no model (``topology``) must not import torch: heavy imports happen inside command
bodies, and the options' choices come from torch-free modules (:mod:`saddles.cli._options`).

Exit status, the same for every command (:func:`friendly_errors`):

- 0: done;
- 2: the input was refused, before anything was computed: an option value typer rejects, a
  check of the CLI's own (``typer.BadParameter``, raised by the loaders in
  :mod:`saddles.cli._loading`: a missing, empty or corrupt file, a model factory that fails,
  data the loss cannot use, an unknown or unavailable device, a bad YAML value), or a
  ``ValueError``, ``TypeError``, ``LookupError`` or ``FileNotFoundError``/``FileExistsError``/
  ``IsADirectoryError``/``NotADirectoryError`` from the library, which raises those only for
  arguments it refuses, and checks its arguments before it computes;
- 1: the computation failed: any other exception (``RuntimeError`` such as out of memory or a
  non-deterministic Hessian, ``FloatingPointError``, ``MemoryError``, ``OSError`` while
  writing, ...).

Either way the error is one line on stderr (``error: ...``); with ``SADDLES_DEBUG=1`` the
traceback (and that of the exception it came from) is printed before it.
"""

import functools
import os
import re
import sys
import traceback

import typer

app = typer.Typer(
    help="Loss landscapes as numbers: sample, merge trees, persistence and curvature.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Exceptions that mean "this input is refused" (exit status 2); any other means 1.
INPUT_ERRORS = (typer.BadParameter, ValueError, TypeError, LookupError, FileNotFoundError,
                FileExistsError, IsADirectoryError, NotADirectoryError)  # fmt: skip
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def friendly_errors(command):
    """Turn an exception into one line (``error: ...``) and the exit status of the policy in
    the module docstring, instead of a traceback; ``SADDLES_DEBUG=1`` prints the traceback too."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise  # the CLI's own ways out (they subclass RuntimeError)
        except Exception as exc:
            code = 2 if isinstance(exc, INPUT_ERRORS) else 1
            if os.environ.get("SADDLES_DEBUG"):
                traceback.print_exception(exc, file=sys.stderr)  # with the exceptions it chains
            typer.echo(f"error: {error_message(exc)}", err=True)
            raise typer.Exit(code) from exc

    return wrapper


def error_message(exc: BaseException) -> str:
    """One line saying what went wrong: the option's name first for a refused option, and only
    the first line of a long message (torch's run to a dozen); ANSI colours removed."""
    if isinstance(exc, typer.BadParameter):
        hint = exc.param_hint or (exc.param.opts[0] if exc.param is not None else None)
        if isinstance(hint, (list, tuple)):
            hint = " / ".join(hint)
        text = f"{hint}: {exc.message}" if hint else exc.message
    elif isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    else:
        text = str(exc)
    lines = [line.strip() for line in _ANSI.sub("", text).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[0] if isinstance(exc, INPUT_ERRORS) else f"{lines[0]} ({type(exc).__name__})"


# Command modules (each registers its commands on `app`).
from saddles.cli import experiment  # noqa: E402,F401
from saddles.cli import topology  # noqa: E402,F401
from saddles.cli import run  # noqa: E402,F401
from saddles.cli import landscape  # noqa: E402,F401
from saddles.cli import hessian  # noqa: E402,F401
from saddles.cli import dynamics  # noqa: E402,F401
from saddles.cli import compare  # noqa: E402,F401
from saddles.cli import export  # noqa: E402,F401
from saddles.cli import checkpoints  # noqa: E402,F401


def main() -> None:
    """Entry point of the `saddles` console script."""
    app()
