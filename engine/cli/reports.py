"""Verbs that read a ledger and change nothing: validate, balances, payments, aging.

Each verb loads the ledger (exit 2 with every problem when it cannot), computes a
report from :mod:`paysplit.reports` and prints it: a rich table by default, exactly
the JSON of ``docs/cli.md`` with ``--json``. ``validate`` exits 1 when a ledger
that loads breaks an invariant of :mod:`paysplit.invariants`.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from paysplit.cli.common import DAY, common_options, echo_err, emit_json, options, read_ledger
from paysplit.errors import Problem, UsageError
from paysplit.invariants import check_invariants
from paysplit.ledger import Ledger
from paysplit.ledger_io import LEDGER_FORMATS
from paysplit.money import Cents, format_cents
from paysplit.reports import (
    BUCKETS,
    AgingReport,
    Dashboard,
    PaymentsReport,
    ProviderBalances,
    aging,
    dashboard,
    patient_dashboards,
    payments_report,
    provider_balances,
)

F = TypeVar("F", bound=Callable[..., Any])

NEGATIVE_MARK = "⚠"
"""Shown next to a negative unallocated amount, so it is seen without colour too."""


def ledger_options(command: F) -> F:
    """``--ledger PATH`` (required) and ``--ledger-format NAME`` for a verb that reads a ledger."""
    command = click.option(
        "--ledger-format",
        "ledger_format",
        default="json",
        show_default=True,
        metavar="NAME",
        help=f"How the ledger file is written: {', '.join(LEDGER_FORMATS)}, "
        "or a format a plugin reads.",
    )(command)
    command = click.option(
        "--ledger",
        "ledger_path",
        required=True,
        metavar="PATH",
        type=click.Path(path_type=Path),
        help="The ledger file to read.",
    )(command)
    return command


def _console() -> Console:
    # Not a terminal (a pipe, a file, a test): wide enough that tables do not wrap.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def _money(cents: Cents, *, flag_negative: bool = False) -> Text:
    text = Text(format_cents(cents))
    if flag_negative and cents < 0:
        text.append(f" {NEGATIVE_MARK}", style="bold")
        text.stylize("bold red")
    return text


# --------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------
def _counts(ledger: Ledger) -> dict[str, int]:
    accounts = ledger.accounts
    return {
        "accounts": len(accounts),
        "patients": sum(len(a.patients) for a in accounts),
        "charges": sum(len(a.charges) for a in accounts),
        "adjustments": sum(len(a.adjustments) for a in accounts),
        "payments": sum(len(a.payments) for a in accounts),
        "plans": sum(len(a.plans) for a in accounts),
        "splits": sum(len(a.splits) for a in accounts),
    }


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun if count == 1 else noun + 's'}"


@click.command("validate")
@ledger_options
@common_options
def validate(ledger_path: Path, ledger_format: str) -> None:
    """Check a ledger: its shape, ids and references, then the invariants.

    Every problem is printed with its JSON path. Exit 0 when the ledger is sound,
    1 when it loads but breaks an invariant (a split of zero, a reversal larger
    than its split, refunds beyond a payment's amount), 2 when it cannot be loaded.

    \b
    Example:
      paysplit validate --ledger examples/ledgers/smith_family.json
      paysplit validate --ledger export.jsonl --ledger-format jsonl --json
    """
    ledger = read_ledger(ledger_path, ledger_format)
    problems = check_invariants(ledger, history=True)
    counts = _counts(ledger)
    if options().json:
        emit_json(
            {
                "file": str(ledger_path),
                "valid": not problems,
                "errors": [p.to_json() for p in problems],
                "counts": counts,
            }
        )
    if problems:
        _print_invariant_problems(str(ledger_path), problems)
        raise click.exceptions.Exit(1)
    if not options().json:
        listed = ", ".join(_plural(n, noun[:-1]) for noun, n in counts.items())
        click.echo(f"{ledger_path}: a valid ledger ({listed}); every invariant holds")


def _print_invariant_problems(source: str, problems: Sequence[Problem]) -> None:
    noun = "invariant" if len(problems) == 1 else "invariants"
    lines = [f"error: {source} loads, but breaks {len(problems)} {noun}:"]
    lines += [f"  {problem}" for problem in problems]
    echo_err("\n".join(lines))


# --------------------------------------------------------------------------
# balances
# --------------------------------------------------------------------------
@click.command("balances")
@ledger_options
@click.option("--account", "account_id", metavar="ID", help="One account (a family).")
@click.option("--patient", "patient_id", metavar="ID", help="One patient.")
@click.option(
    "--by",
    "by",
    type=click.Choice(["provider"]),
    help="Per provider (doctor), as Oasis shows an account's balances.",
)
@common_options
def balances(
    ledger_path: Path,
    ledger_format: str,
    account_id: str | None,
    patient_id: str | None,
    by: str | None,
) -> None:
    """Balances: the patient dashboard (DrChrono), or per provider (Oasis).

    The dashboard shows total paid, allocated, unallocated, patient
    responsibility, statement balance (responsibility - allocated) and total
    balance (responsibility - total paid), for one patient, one account (its
    patients and a total), or every patient. With --by provider: each
    provider's invoices, unallocated credit and net balance, then "all".

    \b
    Example:
      paysplit balances --ledger examples/ledgers/drchrono_jenny_harris.json --patient P1
      paysplit balances --ledger examples/ledgers/oasis_mr_smith.json \\
          --account PAID_40_DR2 --by provider --json
    """
    if account_id is not None and patient_id is not None:
        raise UsageError("give --account or --patient, not both")
    ledger = read_ledger(ledger_path, ledger_format)
    if by == "provider":
        if patient_id is not None:
            raise UsageError(
                "--by provider shows an account's balances per provider; give --account ID"
            )
        ids = [account_id] if account_id is not None else [a.id for a in ledger.accounts]
        tables = [provider_balances(ledger, one) for one in ids]
        if options().json:
            if account_id is not None:
                emit_json(tables[0].to_json())
            else:
                emit_json({"accounts": [t.to_json() for t in tables]})
            return
        console = _console()
        for table in tables:
            console.print(_provider_table(ledger, table))
        return
    if patient_id is not None:
        one = dashboard(ledger, patient_id=patient_id)
        if options().json:
            emit_json(one.to_json())
        else:
            _console().print(_dashboard_table([one]))
        return
    if account_id is not None:
        total = dashboard(ledger, account_id=account_id)
        if options().json:
            emit_json(total.to_json())
        else:
            rows = [*patient_dashboards(ledger, account_id), total]
            _console().print(_dashboard_table(rows, title=f"Account {account_id}"))
        return
    every = patient_dashboards(ledger)
    if options().json:
        emit_json({"patients": [d.to_json() for d in every]})
    else:
        _console().print(_dashboard_table(list(every)))


def _dashboard_table(rows: Sequence[Dashboard], title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("Patient")
    for heading in (
        "Total paid",
        "Allocated",
        "Unallocated",
        "Responsibility",
        "Statement balance",
        "Total balance",
    ):
        table.add_column(heading, justify="right")
    for row in rows:
        label = f"{row.id} {row.name}".strip() if row.scope == "patient" else f"{row.id} (total)"
        table.add_row(
            Text(label, style="bold" if row.scope != "patient" else ""),
            _money(row.total_paid),
            _money(row.allocated),
            _money(row.unallocated, flag_negative=True),
            _money(row.responsibility),
            _money(row.statement_balance),
            _money(row.total_balance),
        )
    return table


def _provider_table(ledger: Ledger, report: ProviderBalances) -> Table:
    names = {p.id: p.name for p in ledger.providers}
    table = Table(title=f"Account {report.account}", title_justify="left")
    table.add_column("Provider")
    table.add_column("Invoices", justify="right")
    table.add_column("Unallocated credit", justify="right")
    table.add_column("Net balance", justify="right")
    for row in report.rows:
        label = f"{row.provider} {names.get(row.provider, '')}".strip()
        table.add_row(
            Text(label, style="bold" if row.provider == "all" else ""),
            _money(row.invoices),
            _money(row.unallocated_credit),
            _money(row.net),
        )
    return table


# --------------------------------------------------------------------------
# payments
# --------------------------------------------------------------------------
@click.command("payments")
@ledger_options
@click.option("--account", "account_id", metavar="ID", help="Only this account's payments.")
@common_options
def payments(ledger_path: Path, ledger_format: str, account_id: str | None) -> None:
    """Every payment with its amount, allocated, refunded and unallocated amounts.

    A negative unallocated amount (more allocated than paid, which only a
    setting that allows over-allocation permits) is flagged. A refund
    counts in the payment it refunds; a void payment counts nowhere.

    \b
    Example:
      paysplit payments --ledger examples/ledgers/therapy_insurance.json
      paysplit payments --ledger examples/ledgers/smith_family.json --account SMITH --json
    """
    ledger = read_ledger(ledger_path, ledger_format)
    report = payments_report(ledger, account_id)
    if options().json:
        emit_json(report.to_json())
    else:
        _print_payments(report)


def _print_payments(report: PaymentsReport) -> None:
    table = Table()
    for heading in ("Payment", "Account", "Patient", "Payer", "Provider", "Type"):
        table.add_column(heading)
    for heading in ("Amount", "Allocated", "Refunded", "Unallocated"):
        table.add_column(heading, justify="right")
    for row in report.rows:
        kind = row.type + (" (void)" if row.void else "")
        table.add_row(
            row.id,
            row.account,
            row.patient,
            row.payer,
            row.provider or "-",
            kind,
            _money(row.amount),
            _money(row.allocated),
            _money(row.refunded),
            _money(row.unallocated, flag_negative=True),
            style="dim" if row.void else None,
        )
    console = _console()
    console.print(table)
    negative = [row.id for row in report.rows if row.negative]
    if negative:
        console.print(
            f"{NEGATIVE_MARK} negative unallocated: more was allocated than paid "
            f"({', '.join(negative)})",
            style="bold red",
        )


# --------------------------------------------------------------------------
# aging
# --------------------------------------------------------------------------
@click.command("aging")
@ledger_options
@click.option(
    "--as-of",
    "as_of",
    type=DAY,
    metavar="DATE",
    help="Age charges as of this date (YYYY-MM-DD); default: the ledger's as_of, else today.",
)
@common_options
def aging_command(ledger_path: Path, ledger_format: str, as_of: dt.date | None) -> None:
    """Aged debtors: outstanding charge balances by age, with unallocated credit.

    For each account: charge balances by days since the service date (0-30,
    31-60, 61-90, over 90), the outstanding total, the unallocated credit
    (payments not yet allocated, unattached credit adjustments) and the net
    balance; a practice total closes the report.

    \b
    Example:
      paysplit aging --ledger examples/ledgers/smith_family.json --as-of 2025-03-01
    """
    ledger = read_ledger(ledger_path, ledger_format)
    report = aging(ledger, as_of)
    if options().json:
        emit_json(report.to_json())
    else:
        _console().print(_aging_table(report))


def _aging_table(report: AgingReport) -> Table:
    table = Table(title=f"Aged debtors as of {report.as_of.isoformat()}", title_justify="left")
    table.add_column("Account")
    headings = {"current": "Current", "31_60": "31-60", "61_90": "61-90", "over_90": "Over 90"}
    for name in BUCKETS:
        table.add_column(headings[name], justify="right")
    for heading in ("Outstanding", "Unallocated credit", "Net"):
        table.add_column(heading, justify="right")
    for row in (*report.rows, report.total):
        table.add_row(
            Text(row.account, style="bold" if row is report.total else ""),
            *(_money(row.buckets[name]) for name in BUCKETS),
            _money(row.outstanding),
            _money(row.unallocated_credit),
            _money(row.net),
            end_section=row is report.rows[-1] if report.rows else False,
        )
    return table


COMMANDS: list[click.Command] = [validate, balances, payments, aging_command]
