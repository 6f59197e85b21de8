"""How `recforge` ends: a usage error is one line and exit 2, a RecforgeError its message and exit 1
(a ConfigError 2: the invocation was wrong), anything else one line unless a traceback is asked for.

typer >= 0.2x runs on its own vendored click, so the click exception types are looked up from
`typer.core` rather than imported: `import click` may be a different copy.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any, NoReturn

import typer
import typer.core

from recforge.errors import ConfigError, RecforgeError

DEBUG_ENV = "RECFORGE_DEBUG"
EXIT_CODES: dict[type[RecforgeError], int] = {ConfigError: 2, RecforgeError: 1}  # nearest class in the MRO wins
USAGE_EXIT = 2
_state = {"verbose": False}


def set_verbose(on: bool) -> None:
    """Called by the root `--verbose` option: unexpected errors then show their traceback."""
    _state["verbose"] = on


def traceback_wanted() -> bool:
    return _state["verbose"] or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _click_exceptions() -> ModuleType:
    """`exceptions` of the click typer parses with (vendored `typer._click` in typer >= 0.2x, else `click`)."""
    vendored = getattr(typer.core, "_click", None)
    click = vendored if isinstance(vendored, ModuleType) else typer.core.click  # type: ignore[attr-defined]
    return click.exceptions


def exit_code(exc: RecforgeError) -> int:
    return next(EXIT_CODES[cls] for cls in type(exc).__mro__ if cls in EXIT_CODES)


def run(command: Callable[..., Any]) -> NoReturn:
    """Run the Typer app `command` without click's own handling and end the process with the right code."""
    click = _click_exceptions()
    exits = tuple({typer.Exit, getattr(click, "Exit", typer.Exit)})
    aborts = tuple({typer.Abort, getattr(click, "Abort", typer.Abort)})
    try:
        code = command(standalone_mode=False)  # returns a command's typer.Exit code in this mode
        sys.exit(code if isinstance(code, int) else 0)
    except RecforgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exit_code(exc))
    except exits as exc:
        sys.exit(exc.exit_code)
    except aborts:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        _show_click_error(exc, click)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # the last line of defence before the user's terminal
        _show_unexpected(exc)
        sys.exit(1)


def _show_click_error(exc: Exception, click: ModuleType) -> None:
    """One line for a usage error plus a help hint; bare `recforge` (or a bare group) prints its help."""
    ctx = getattr(exc, "ctx", None)
    no_args = getattr(click, "NoArgsIsHelpError", None)
    if no_args is not None and isinstance(exc, no_args):
        if ctx is not None:
            typer.echo(ctx.get_help())
        return
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)  # type: ignore[attr-defined]
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    if ctx is not None and isinstance(exc, click.UsageError):
        typer.echo(f"  help: {ctx.command_path} --help", err=True)


def _show_unexpected(exc: Exception) -> None:
    if traceback_wanted():
        traceback.print_exception(exc)
    first = str(exc).splitlines()[0] if str(exc) else ""
    typer.echo(f"error: unexpected {type(exc).__name__}: {first}", err=True)
    if not traceback_wanted():
        typer.echo(
            f"  (this is a bug in recforge or a case it does not handle: rerun with --verbose or "
            f"{DEBUG_ENV}=1 for the traceback, and report it)",
            err=True,
        )
