"""How a command ends: rf_core's exceptions as one-line click errors with the right exit code.

Exit codes: 0 ok, 1 data or runtime error, 2 usage error, 128 + N when signal N stopped it
(130 for Ctrl-C, 143 for SIGTERM). A closed downstream pipe (``rf-exec ... | head``) ends the
command quietly with 0. ``RF_DEBUG=1`` shows tracebacks.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Callable, Iterator

import click

from rf_core.commands.output import quiet_stdout
from rf_core.commands.params import refuse_non_finite
from rf_core.errors import RFError, UsageError
from rf_core.records import signals

# what the model-using commands import; the rest of the toolkit runs without them
MODEL_PACKAGES = ("torch", "transformers", "peft", "accelerate")


class DataError(click.ClickException):
    """A data or runtime error as click shows it: ``Error: rf-x: ...``, exit 1."""

    exit_code = 1


@contextlib.contextmanager
def guard(prog: str) -> Iterator[None]:
    """Turn rf_core exceptions into one-line click errors with the right exit code."""
    debug = os.environ.get("RF_DEBUG") == "1"
    try:
        with signals.handled():
            yield
    except (signals.Interrupted, KeyboardInterrupt) as exc:
        stop = exc if isinstance(exc, signals.Interrupted) else signals.Interrupted(2)
        click.echo(f"{prog}: stopped by {stop.name}", err=True)
        raise SystemExit(stop.exit_code)
    except BrokenPipeError:
        quiet_stdout()
        raise SystemExit(0)
    except UsageError as exc:
        if debug:
            raise
        raise click.UsageError(f"{prog}: {exc}") from None
    except ImportError as exc:
        package = (exc.name or "").split(".")[0]
        if debug or package not in MODEL_PACKAGES:
            raise
        raise DataError(f"{prog}: {package} is not installed; the model commands need it: "
                        "pip install 'reasonforge[models]'") from None
    except RFError as exc:
        if debug:
            raise
        raise DataError(f"{prog}: {exc}") from None


def command(prog: str) -> Callable[[Callable], Callable]:
    """Wrap a click callback so rf_core errors become one-line errors naming ``prog``."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            refuse_non_finite(kwargs)
            with guard(prog):
                return fn(*args, **kwargs)

        return wrapper

    return decorate
