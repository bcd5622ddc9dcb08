"""The ``paysplit`` command: a thin face over the library.

Each group of verbs lives in its own module and lists its commands in
``COMMANDS``; this module assembles them and turns every error into one clear
message and an exit code (``docs/cli.md``): 0 done, 1 check/validate/test
found problems, 2 bad usage or bad input, 3 blocked or refused, 4 an internal
error (a bug: please report it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from paysplit import __version__
from paysplit.cli import batch, language, operations, reports, testing
from paysplit.cli.common import echo_err, emit_json
from paysplit.errors import PaysplitError

INTERNAL_ERROR = 4


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
        returned = cli.main(args=args, prog_name="paysplit", standalone_mode=False)
        if isinstance(returned, int) and not isinstance(returned, bool):
            return returned
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.ClickException as usage:
        usage.show()
        return 2
    except click.exceptions.Abort:
        echo_err("aborted")
        return 2
    except PaysplitError as error:
        if as_json:
            emit_json(error.to_json())
        echo_err(error.render())
        return error.exit_code
    except KeyboardInterrupt:
        echo_err("interrupted: nothing was written")
        return 130
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
