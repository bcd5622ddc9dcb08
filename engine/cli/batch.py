"""The ``batch`` verb: a rule over every unallocated payment of JSON Lines ledgers.

A thin face over :mod:`paysplit.batch`: it parses the options, shows a progress
bar on a terminal (never in a pipe or a log), runs the batch and prints the
summary (``--json``: the summary document, as ``summary.json`` holds it).
Exit codes (``docs/cli.md``): 0 the run finished (accounts that could not be
processed and blocked plans are in ``errors.jsonl`` and counted in the
summary), 2 bad usage or bad rule files (nothing is written).
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from paysplit.batch import (
    DASK_CHUNK_SIZE,
    DEFAULT_CHUNK_SIZE,
    ENGINES,
    BatchSpec,
    Summary,
    run_batch,
)
from paysplit.cli.common import (
    STOPS,
    allowed_plugins,
    common_options,
    disabled_plugins,
    emit_json,
    options,
)
from paysplit.errors import UsageError

GREEDY = ("--rules", "--in")
"""Options that take several values: ``--in a.jsonl b.jsonl`` (what a shell glob expands
to) means ``--in a.jsonl --in b.jsonl``."""


def spread_greedy(args: Sequence[str], greedy: Sequence[str] = GREEDY) -> list[str]:
    """Repeat a greedy option's name before each further value that follows it."""
    out: list[str] = []
    current: str | None = None
    taken = False
    for position, arg in enumerate(args):
        if arg == "--":
            out.extend(args[position:])
            break
        if arg.startswith("-") and arg != "-":
            name, has_value, _ = arg.partition("=")
            current = name if name in greedy else None
            taken = bool(has_value)
            out.append(arg)
            continue
        if current is not None:
            if taken:
                out.append(current)
            taken = True
        out.append(arg)
    return out


class _BatchCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, spread_greedy(args))


def _date(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--as-of: {text!r} is not a date (write YYYY-MM-DD)") from None


def _progress_bar(console: Console) -> Progress:
    # auto_refresh=False: no refresh thread, so the local engine can still fork its workers.
    return Progress(
        TextColumn("accounts"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        auto_refresh=False,
    )


def _print_summary(summary: Summary) -> None:
    c = summary.counts
    per_second = c.accounts / summary.seconds if summary.seconds > 0 else 0.0
    table = Table("", "", show_header=False, box=None, title=f"batch {summary.rule}")
    for label, value in (
        ("accounts", c.accounts),
        ("payments", c.payments),
        ("splits", c.splits),
        ("credits", c.credits),
        ("blocked", c.blocked),
        ("errors", c.errors),
        ("fast path", c.fast_path),
    ):
        table.add_row(label, f"{value:,}")
    table.add_row("seconds", f"{summary.seconds:.1f} ({per_second:,.0f} accounts/s)")
    console = Console(highlight=False, soft_wrap=True)
    console.print(table)
    for file in summary.files:
        console.print(f"wrote {file.plans}", markup=False)
    extra = ""
    if c.errors or c.blocked:
        extra = f" ({c.errors} account(s) not processed, {c.blocked} plan(s) blocked)"
    errors = Path(summary.out) / "errors.jsonl"
    console.print(f"wrote {errors}{extra} and summary.json", markup=False)


@click.command("batch", cls=_BatchCommand)
@common_options
@click.option(
    "--rules",
    "rules",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False),
    metavar="R...",
    help="Rule files, loaded as one rule set (--rules a.rules b.rules, or repeat --rules).",
)
@click.option("--rule", "rule_name", required=True, metavar="NAME", help="The rule to apply.")
@click.option(
    "--in",
    "inputs",
    multiple=True,
    required=True,
    metavar="PATH...",
    help="JSON Lines ledgers: files or quoted globs ('data/*.jsonl').",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Folder for <input>.plans.jsonl, errors.jsonl and summary.json (created if needed).",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="local",
    show_default=True,
    help="local: this machine's processes; dask: a Dask bag on dask.distributed.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Worker processes (default 1 for local; the CPU count for a local Dask cluster).",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDR",
    help="Join this Dask scheduler (tcp://host:8786) instead of starting a local cluster.",
)
@click.option(
    "--chunk-size",
    "chunk_size",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help=f"Account lines per unit of work (default {DEFAULT_CHUNK_SIZE}; with --engine dask "
    f"{DASK_CHUNK_SIZE}, and about that many, by bytes).",
)
@click.option(
    "--as-of",
    "as_of",
    default=None,
    metavar="DATE",
    help="The run date (default: each ledger's as_of, else today).",
)
@click.option(
    "--trace",
    type=click.Choice(("full", "none")),
    default="full",
    show_default=True,
    help="full: each plan as 'paysplit apply --json' prints it; none: the same plans "
    "with an empty trace (smaller, faster: for nightly runs).",
)
def batch_command(
    rules: tuple[str, ...],
    rule_name: str,
    inputs: tuple[str, ...],
    out: str,
    engine: str,
    workers: int | None,
    scheduler: str | None,
    chunk_size: int | None,
    as_of: str | None,
    trace: str,
) -> None:
    """Apply a rule to every unallocated payment of every account of JSON Lines ledgers.

    Each payment that is not void and has unallocated credit gets the rule, in
    payment-date order within its account. Writes OUT/<input>.plans.jsonl (one
    plan per line), OUT/errors.jsonl (accounts that could not be processed,
    blocked plans) and OUT/summary.json, each atomically.

    \b
    Examples:
      paysplit batch --rules rules/apply_automatically.rules --rule due_patient \\
          --in 'ledgers/*.jsonl' --out nightly/ --workers 4
      paysplit batch --rules smile.rules --rule due_patient --in a.jsonl b.jsonl \\
          --out out/ --engine dask --scheduler tcp://scheduler:8786
    """
    spec = BatchSpec(
        rule_files=rules,
        rule=rule_name,
        disabled_plugins=tuple(disabled_plugins()),
        allowed_plugins=None if (allowed := allowed_plugins()) is None else tuple(allowed),
        as_of=_date(as_of),
        trace=trace == "full",
    )
    arguments: dict[str, Any] = {
        "engine": engine,
        "workers": workers,
        "scheduler": scheduler,
        "chunk_size": chunk_size,
        "on_commit": STOPS.hold,  # Ctrl-C and SIGTERM never leave the files half replaced
    }
    console = Console(stderr=True)
    if console.is_terminal and sys.stderr.isatty():
        with _progress_bar(console) as bar:
            task = bar.add_task("accounts", total=None)  # known once the inputs are scanned

            def advance(finished: int, total: int | None) -> None:
                bar.update(task, completed=finished, total=total)
                bar.refresh()

            summary = run_batch(spec, inputs, out, progress=advance, **arguments)
    else:
        summary = run_batch(spec, inputs, out, **arguments)
    if options().json:
        emit_json(summary.to_json())
    else:
        _print_summary(summary)


COMMANDS: list[click.Command] = [batch_command]
