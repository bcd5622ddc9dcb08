"""The ``paysplit`` command: a thin face over the library.

Each group of verbs lives in its own module and lists its commands in
``COMMANDS``; this module assembles them and turns every error into one clear
message and an exit code (``docs/cli.md``): 0 done, 1 check/validate/test
found problems, 2 bad usage or bad input, 3 blocked or refused, 4 an internal
error (a bug: please report it); 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

import click

from paysplit import __version__
from paysplit.cli import batch, language, operations, reports, testing
from paysplit.cli.common import STOPS, Terminated, echo_err, emit_json
from paysplit.errors import PaysplitError

INTERNAL_ERROR = 4
INTERRUPTED = 130
TERMINATED = 143


@contextlib.contextmanager
def _stops_handled() -> Iterator[None]:
    """Ctrl-C and SIGTERM through :data:`paysplit.cli.common.STOPS` while a command runs."""
    STOPS.reset()
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set a handler (the library in a thread)
        return
    previous = {signum: signal.signal(signum, STOPS.handle) for signum in _STOPS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


_STOPS = (signal.SIGINT, signal.SIGTERM)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="paysplit")
def cli() -> None:
    """paysplit: decide how a practice's payments are allocated, by rule files you can test.

    \b
    Start with:
      paysplit validate --ledger examples/ledgers/smith_family.json
      paysplit check rules/*.rules
      paysplit apply --ledger L --rules rules/apply_automatically.rules --payment PAY1 --explain
    """


for _module in (reports, language, operations, testing, batch):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns (and, as a script, exits with) the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    try:
        # Outside standalone mode click *returns* the code of ctx.exit(N) instead of raising.
        with _stops_handled():
            returned = cli.main(args=args, prog_name="paysplit", standalone_mode=False)
        if STOPS.pending is not None:  # held while a batch renamed its files into place
            stopped = "terminated" if STOPS.pending == signal.SIGTERM else "interrupted"
            echo_err(f"{stopped} after the run's files were written (they are complete)")
            return TERMINATED if STOPS.pending == signal.SIGTERM else INTERRUPTED
        if isinstance(returned, int) and not isinstance(returned, bool):
            return returned
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.ClickException as usage:
        usage.show()
        return 2
    except (click.exceptions.Abort, KeyboardInterrupt):  # click makes Ctrl-C an Abort
        echo_err("interrupted: nothing was written")
        return INTERRUPTED
    except Terminated:
        echo_err("terminated: nothing was written")
        return TERMINATED
    except PaysplitError as error:
        if as_json:
            emit_json(error.to_json())
        echo_err(error.render())
        return error.exit_code
    except BrokenPipeError:
        return 0
    except Exception as bug:  # the last line of defence: never a traceback
        if os.environ.get("PAYSPLIT_DEBUG"):
            raise
        echo_err(
            f"internal error: {type(bug).__name__}: {bug}\n"
            "  nothing was written. This is a bug in paysplit or a plugin; "
            "run again with PAYSPLIT_DEBUG=1 for the traceback and report it."
        )
        return INTERNAL_ERROR
    return 0


def run() -> None:
    sys.exit(main())
