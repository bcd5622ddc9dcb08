"""The verbs that change a ledger: apply, allocate, refund, unallocate, void, post-*.

Each verb loads the ledger (and rule files), asks :mod:`paysplit.operations`
for a plan, prints it, and writes the new ledger only with ``--out PATH`` or
``--in-place`` (atomically, with a history entry), never with ``--preview``.
A verb that will write holds the ledger's lock (:mod:`paysplit.locking`) from
before it reads until after it has written, so two writers never lose an update.
Exit codes (``docs/cli.md``): 0 done, 2 bad usage or input, 3 blocked or
refused (the plan and its reason are printed, nothing is written).
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from paysplit import ledger_io, locking
from paysplit import operations as ops
from paysplit.apply import apply_plan, history_entry, record_history
from paysplit.cli import common
from paysplit.cli.common import (
    allowed_plugins,
    common_options,
    disabled_plugins,
    echo,
    echo_err,
    emit_json,
    options,
)
from paysplit.errors import UsageError
from paysplit.ledger import Ledger, parse_day
from paysplit.money import MoneyError, format_cents, parse_amount
from paysplit.plans import Plan
from paysplit.rules import RuleSet

F = TypeVar("F", bound=Callable[..., Any])

BLOCKED_EXIT = 3


# --- the library behind the verbs --------------------------------------------------
def _module(name: str) -> Any:
    """The plugin manager and the compiler, imported when a verb first needs them."""
    return importlib.import_module(f"paysplit.{name}")


def _plugins() -> Any:
    return _module("plugin_manager").load(disabled=disabled_plugins(), allowed=allowed_plugins())


def read_ledger(path: str, ledger_format: str | None = None) -> Ledger:
    """Load ``--ledger`` (``--ledger-format NAME`` picks a reader; default the JSON document)."""
    return common.read_ledger(path, ledger_format)


def load_rules(paths: Sequence[str]) -> RuleSet:
    """Compile the rule files as one rule set (none given: the plugins' setting defaults)."""
    rules: RuleSet = _module("compiler").load_rules(list(paths), _plugins())
    return rules


def write_ledger(ledger: Ledger, path: str, format_name: str = "json") -> None:
    """Write atomically: a failure leaves the old file whole. Under the ledger's lock, the
    file must still be the one the lock found (else nothing is written)."""
    locking.check_unchanged(path)
    if format_name == "jsonl":  # the header line, then one account per line, in order
        ledger_io.write_jsonl(ledger.header(), ledger.accounts, path)
    else:
        ledger_io.write_ledger(ledger, path)


def output_format(ledger_format: str | None, out: str | None, *, in_place: bool) -> str:
    """The format a verb writes its new ledger in (``json`` or ``jsonl``).

    ``--in-place`` writes the format the ledger was read in: a JSON Lines ledger stays JSON
    Lines. A ledger read by a plugin's reader (a practice system's export) cannot be written
    back in its own format, so ``--in-place`` is refused before anything is read or written.
    ``--out PATH`` writes JSON Lines to a ``.jsonl`` path and the JSON document to a
    ``.json`` one; any other name gets the format the ledger was read in (the JSON document
    for a plugin's format).
    """
    read_as = ledger_format or "json"
    if in_place:
        if read_as not in ledger_io.LEDGER_FORMATS:
            raise UsageError(
                f"--in-place: paysplit writes only its own ledger formats (json, jsonl), not "
                f'"{read_as}" (a format a plugin reads); write the new ledger with --out '
                "PATH.json instead; nothing was written"
            )
        return read_as
    suffix = Path(out).suffix.lower() if out is not None else ""
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".json":
        return "json"
    return read_as if read_as in ledger_io.LEDGER_FORMATS else "json"


def _write_target(kwargs: dict[str, Any]) -> str | None:
    """The file a verb will write, or None (a preview, or neither --out nor --in-place)."""
    if kwargs.get("preview"):
        return None
    target: str | None = kwargs.get("ledger_path") if kwargs.get("in_place") else kwargs.get("out")
    return target


def _locked(command: F) -> F:
    """Run the verb holding the lock of the file it will write, from before it reads the
    ledger until after it has written the new one."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("in_place") and kwargs.get("out") is None:  # refused before reading
            output_format(kwargs.get("ledger_format"), None, in_place=True)
        target = _write_target(kwargs)
        if target is None or (kwargs.get("out") is not None and kwargs.get("in_place")):
            return command(*args, **kwargs)  # nothing to write (finish refuses both flags)
        with locking.ledger_lock(target) as lock:
            for stale in lock.removed:
                echo_err(f"note: removed {stale}, left half-written by a writer that was killed")
            return command(*args, **kwargs)

    return typing.cast(F, run)


# --- options ---------------------------------------------------------------------
def _ledger_options(command: F) -> F:
    command = click.option(
        "--ledger-format",
        "ledger_format",
        default=None,
        metavar="NAME",
        help="Read the ledger with this plugin reader (default: the JSON document).",
    )(command)
    command = click.option(
        "--ledger",
        "ledger_path",
        required=True,
        type=click.Path(dir_okay=False),
        metavar="PATH",
        help="The ledger document to read.",
    )(command)
    return command


def _rules_options(command: F) -> F:
    command = click.argument("more_rules", nargs=-1, type=click.Path(dir_okay=False))(command)
    command = click.option(
        "--rules",
        "rules",
        multiple=True,
        type=click.Path(dir_okay=False),
        metavar="R...",
        help="Rule files, loaded as one rule set (--rules a.rules b.rules, or repeat --rules).",
    )(command)
    return command


def _write_options(command: F) -> F:
    command = _locked(command)
    command = click.option(
        "--explain", is_flag=True, help="Add the trace: why each target was paid or skipped."
    )(command)
    command = click.option(
        "--preview", is_flag=True, help="Show the plan and write nothing, even with --out."
    )(command)
    command = click.option(
        "--in-place", "in_place", is_flag=True, help="Write the new ledger over --ledger."
    )(command)
    command = click.option(
        "--out",
        "out",
        default=None,
        type=click.Path(dir_okay=False),
        metavar="PATH",
        help="Write the new ledger (with a history entry) to PATH, atomically.",
    )(command)
    return command


def _rule_paths(rules: Sequence[str], more: Sequence[str]) -> list[str]:
    if more and not rules:
        raise UsageError(f"unexpected argument {more[0]!r} (rule files follow --rules)")
    return [*rules, *more]


def _amount(text: str, option: str) -> int:
    try:
        return parse_amount(text)
    except MoneyError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _date(text: str | None, option: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return parse_day(text)
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not a date (write YYYY-MM-DD)") from None


# --- printing and writing ----------------------------------------------------------
def trace_lines(plan: Plan) -> list[str]:
    """The trace as ``--explain`` prints it, one line per source and target considered."""
    lines = []
    for entry in plan.trace:
        where = f" ({entry.clause})" if entry.clause else ""
        if entry.used:
            source = f" from {entry.source}" if entry.source else ""
            lines.append(
                f"{entry.target} paid {format_cents(entry.amount)}{source}: {entry.reason}{where}"
            )
        else:
            source = f" (credit {entry.source})" if entry.source else ""
            lines.append(f"{entry.target} skipped{source}: {entry.reason}{where}")
    return lines


def print_plan(plan: Plan, *, explain: bool) -> None:
    """The plan as tables: splits, credits, payments, voids, unallocated, warnings."""
    # Tables fit 120 columns; a line of text (a reason, a trace entry) is never
    # wrapped, so its FILE:LINE:COL stays on the line it belongs to.
    console = Console(highlight=False, width=120, soft_wrap=False)
    title = f"{plan.operation}" + (f" {plan.rule}" if plan.rule else "")
    if plan.preview:
        title += " (preview: nothing written)"
    console.print(title, markup=False, soft_wrap=True)
    if plan.blocked is not None:
        where = f" ({plan.blocked.clause})" if plan.blocked.clause else ""
        console.print(f"BLOCKED: {plan.blocked.reason}{where}", markup=False, soft_wrap=True)
    if plan.charges:
        table = Table("charge", "patient", "provider", "date", "amount", title="Charges posted")
        for c in plan.charges:
            table.add_row(c.id, c.patient, c.provider, c.date.isoformat(), format_cents(c.amount))
        console.print(table)
    if plan.splits:
        table = Table("split", "payment", "charge", "installment", "amount", "transfer")
        table.title = "Splits"
        for s in plan.splits:
            table.add_row(
                s.id,
                s.payment,
                s.charge or "",
                s.installment or "",
                format_cents(s.amount),
                s.transfer or (f"reverses {s.reverses}" if s.reverses else ""),
            )
        console.print(table)
    elif plan.blocked is None and not plan.payments and not plan.voids:
        console.print("No splits.", markup=False, soft_wrap=True)
    if plan.credits:
        table = Table("payment", "amount", "due to", "memo", "provider", "office", title="Credits")
        for credit in plan.credits:
            table.add_row(
                credit.payment,
                format_cents(credit.amount),
                credit.due_to,
                credit.memo,
                credit.provider or "",
                credit.office or "",
            )
        console.print(table)
    if plan.payments:
        table = Table("payment", "type", "patient", "amount", "refunds", title="Payments")
        for p in plan.payments:
            table.add_row(p.id, p.type, p.patient, format_cents(p.amount), p.refunds or "")
        console.print(table)
    if plan.voids:
        table = Table("payment", "reason", title="Voided")
        for v in plan.voids:
            table.add_row(v.payment, v.reason or "")
        console.print(table)
    if plan.unallocated:
        table = Table("payment", "unallocated", title="Unallocated after")
        for payment_id, amount in plan.unallocated.items():
            flag = " (negative)" if amount < 0 else ""
            table.add_row(payment_id, format_cents(amount) + flag)
        console.print(table)
    for warning in plan.warnings:
        where = f" ({warning.clause})" if warning.clause else ""
        console.print(f"warning: {warning.message}{where}", markup=False, soft_wrap=True)
    if explain and plan.trace:
        console.print("Trace:", markup=False, soft_wrap=True)
        for line in trace_lines(plan):
            console.print(f"  {line}", markup=False, soft_wrap=True)


def finish(
    plan: Plan,
    ledger: Ledger,
    *,
    rules: RuleSet | None,
    ledger_path: str,
    ledger_format: str | None,
    out: str | None,
    in_place: bool,
    preview: bool,
    explain: bool,
) -> None:
    """Print the plan; write the ledger when asked (not for a preview or a blocked plan)."""
    if out is not None and in_place:
        raise UsageError("give --out PATH or --in-place, not both")
    written_as = output_format(ledger_format, out, in_place=in_place)
    if preview:
        plan = plan.model_copy(update={"preview": True})
    if options().json:
        emit_json(plan.to_json())
    else:
        print_plan(plan, explain=explain)
    if plan.blocked is not None:
        where = f" ({plan.blocked.clause})" if plan.blocked.clause else ""
        echo_err(f"blocked: {plan.blocked.reason}{where}; nothing was written")
        click.get_current_context().exit(BLOCKED_EXIT)
    target = ledger_path if in_place else out
    if preview or target is None:
        return
    updated = record_history(apply_plan(ledger, plan), history_entry(plan, rules))
    write_ledger(updated, target, written_as)
    if not options().json:
        echo(f"wrote {target}")


def _write_kwargs(
    ledger_path: str,
    ledger_format: str | None,
    out: str | None,
    in_place: bool,
    preview: bool,
    explain: bool,
) -> dict[str, Any]:
    return {
        "ledger_path": ledger_path,
        "ledger_format": ledger_format,
        "out": out,
        "in_place": in_place,
        "preview": preview,
        "explain": explain,
    }


# --- the verbs ---------------------------------------------------------------------
@click.command("apply")
@common_options
@_ledger_options
@_rules_options
@click.option("--rule", "rule_name", default=None, metavar="NAME", help="The rule to run.")
@click.option("--payment", "payment_id", default=None, metavar="ID", help="Apply to this payment.")
@click.option(
    "--new-payment",
    "new_payment",
    default=None,
    metavar="JSON",
    help="Post this payment and apply.",
)
@click.option(
    "--account", "account_id", default=None, metavar="ID", help="Run a pooled rule on an account."
)
@click.option(
    "--charges",
    "charges",
    multiple=True,
    metavar="ID,ID",
    help="Only these charges (or installments) are targets (002).",
)
@click.option("--as-of", "as_of", default=None, metavar="DATE", help="The run date (YYYY-MM-DD).")
@_write_options
def apply_command(
    ledger_path: str,
    ledger_format: str | None,
    rules: tuple[str, ...],
    more_rules: tuple[str, ...],
    rule_name: str | None,
    payment_id: str | None,
    new_payment: str | None,
    account_id: str | None,
    charges: tuple[str, ...],
    as_of: str | None,
    out: str | None,
    in_place: bool,
    preview: bool,
    explain: bool,
) -> None:
    """Run a rule on one payment, or a pooled rule on one account.

    \b
    Examples:
      paysplit apply --ledger smith.json --rules rules/apply_automatically.rules \\
          --rule due_patient --payment PAY1 --explain
      paysplit apply --ledger smith.json --rules rules/open_dental.rules \\
          --rule allocate_unearned --account A1 --charges C1,C2 --out smith.json
    """
    paths = _rule_paths(rules, more_rules)
    if not paths:
        raise UsageError("apply needs rule files: --rules R...")
    ledger = read_ledger(ledger_path, ledger_format)
    rule_set = load_rules(paths)
    selection = [c.strip() for group in charges for c in group.split(",") if c.strip()]
    payment = None if new_payment is None else ops.payment_from_json(new_payment, ledger)
    plan = ops.apply_rule(
        ledger,
        rule_set,
        rule_name,
        payment_id=payment_id,
        new_payment=payment,
        account_id=account_id,
        charge_ids=selection if charges else None,
        as_of=_date(as_of, "--as-of"),
    )
    finish(
        plan,
        ledger,
        rules=rule_set,
        **_write_kwargs(ledger_path, ledger_format, out, in_place, preview, explain),
    )


@click.command("allocate")
@common_options
@_ledger_options
@_rules_options
@click.option("--payment", "payment_id", required=True, metavar="ID", help="The payment.")
@click.option("--charge", "charge_id", default=None, metavar="ID", help="Pay this charge.")
@click.option(
    "--installment", "installment_id", default=None, metavar="ID", help="Pay this installment."
)
@click.option(
    "--appointment",
    "appointment_id",
    default=None,
    metavar="ID",
    help="Pay this appointment's charges in ledger order; the rest stays on the payment.",
)
@click.option("--amount", "amount", required=True, metavar="X", help="The amount, e.g. 50.00.")
@_write_options
def allocate_command(
    ledger_path: str,
    ledger_format: str | None,
    rules: tuple[str, ...],
    more_rules: tuple[str, ...],
    payment_id: str,
    charge_id: str | None,
    installment_id: str | None,
    appointment_id: str | None,
    amount: str,
    out: str | None,
    in_place: bool,
    preview: bool,
    explain: bool,
) -> None:
    """Allocate part of a payment by hand, checked by the settings' guards.

    \b
    Example:
      paysplit allocate --ledger smith.json --rules rules/oasis.rules \\
          --payment PAY2 --charge C1 --amount 20.00 --out smith.json
    """
    ledger = read_ledger(ledger_path, ledger_format)
    rule_set = load_rules(_rule_paths(rules, more_rules))
    plan = ops.allocate_manual(
        ledger,
        rule_set,
        payment_id,
        charge_id=charge_id,
        installment_id=installment_id,
        appointment_id=appointment_id,
        amount=_amount(amount, "--amount"),
    )
    finish(
        plan,
        ledger,
        rules=rule_set,
        **_write_kwargs(ledger_path, ledger_format, out, in_place, preview, explain),
    )


@click.command("refund")
@common_options
@_ledger_options
@_rules_options
@click.option("--payment", "payment_id", default=None, metavar="ID", help="Refund this payment.")
@click.option(
    "--patient", "patient_id", default=None, metavar="ID", help="Refund a patient's credit."
)
@click.option("--amount", "amount", required=True, metavar="X", help="The amount (sign ignored).")
@click.option("--date", "date", default=None, metavar="D", help="Default: the ledger's as_of.")
@click.option("--method", "method", default=None, metavar="M", help="Default: the payment's.")
@click.option("--provider", "provider", default=None, metavar="ID", help="Default: the payment's.")
@click.option("--memo", "memo", default=None, metavar="T", help="A note on the refund.")
@_write_options
def refund_command(
    ledger_path: str,
    ledger_format: str | None,
    rules: tuple[str, ...],
    more_rules: tuple[str, ...],
    payment_id: str | None,
    patient_id: str | None,
    amount: str,
    date: str | None,
    method: str | None,
    provider: str | None,
    memo: str | None,
    out: str | None,
    in_place: bool,
    preview: bool,
    explain: bool,
) -> None:
    """Refund unallocated credit of a payment, or of a patient's payments oldest first.

    \b
    Examples:
      paysplit refund --ledger harris.json --payment PAY1 --amount -100 --out harris.json
      paysplit refund --ledger harris.json --patient P1 --amount 150.00 --preview
    """
    ledger = read_ledger(ledger_path, ledger_format)
    rule_set = load_rules(_rule_paths(rules, more_rules))
    plan = ops.refund(
        ledger,
        rule_set,
        payment_id=payment_id,
        patient_id=patient_id,
        amount=_amount(amount, "--amount"),
        date=_date(date, "--date"),
        method=method,
        provider=provider,
        memo=memo,
    )
    finish(
        plan,
        ledger,
        rules=rule_set,
        **_write_kwargs(ledger_path, ledger_format, out, in_place, preview, explain),
    )


@click.command("unallocate")
@common_options
@_ledger_options
@click.option("--split", "split_id", required=True, metavar="ID", help="The split to reverse.")
@click.option("--amount", "amount", default=None, metavar="X", help="Default: all that is left.")
@_write_options
def unallocate_command(
    ledger_path: str,
    ledger_format: str | None,
    split_id: str,
    amount: str | None,
    out: str | None,
    in_place: bool,
    preview: bool,
    explain: bool,
) -> None:
    """Reverse all or part of a split; the money returns to the payment's unallocated amount.

    \b
    Example:
      paysplit unallocate --ledger smith.json --split PAY1-1 --amount 25.00 --in-place
    """
    ledger = read_ledger(ledger_path, ledger_format)
    plan = ops.unallocate(ledger, split_id, None if amount is None else _amount(amount, "--amount"))
    finish(
        plan,
        ledger,
        rules=None,
        **_write_kwargs(ledger_path, ledger_format, out, in_place, preview, explain),
    )


@click.command("void")
@common_options
@_ledger_options
@click.option("--payment", "payment_id", required=True, metavar="ID", help="The payment to void.")
@click.option("--reason", "reason", default=None, metavar="T", help="Why (kept in the memo).")
@_write_options
def void_command(
    ledger_path: str,
    ledger_format: str | None,
    payment_id: str,
    reason: str | None,
    out: str | None,
    in_place: bool,
    preview: bool,
    explain: bool,
) -> None:
    """Void a payment: its splits and refunds stop counting; nothing is deleted.

    \b
    Example:
      paysplit void --ledger smith.json --payment PAY2 --reason "entered against Dr 2" --in-place
    """
    ledger = read_ledger(ledger_path, ledger_format)
    plan = ops.void(ledger, payment_id, reason)
    finish(
        plan,
        ledger,
        rules=None,
        **_write_kwargs(ledger_path, ledger_format, out, in_place, preview, explain),
    )


@click.command("post-charge")
@common_options
@_ledger_options
@_rules_options
@click.option("--charge", "charge_json", required=True, metavar="JSON", help="The new charge.")
@_write_options
def post_charge_command(
    ledger_path: str,
    ledger_format: str | None,
    rules: tuple[str, ...],
    more_rules: tuple[str, ...],
    charge_json: str,
    out: str | None,
    in_place: bool,
    preview: bool,
    explain: bool,
) -> None:
    """Add a charge, then run the rules marked `on charge added`.

    \b
    Example:
      paysplit post-charge --ledger harris.json --rules rules/drchrono.rules --charge \\
        '{"id": "C9", "patient": "P1", "provider": "DR1", "appointment": "AP1",
          "date": "2025-02-25", "amount": "20.00", "status": "due_patient"}' --in-place
    """
    ledger = read_ledger(ledger_path, ledger_format)
    rule_set = load_rules(_rule_paths(rules, more_rules))
    plan = ops.post_charge(ledger, rule_set, ops.charge_from_json(charge_json, ledger))
    finish(
        plan,
        ledger,
        rules=rule_set,
        **_write_kwargs(ledger_path, ledger_format, out, in_place, preview, explain),
    )


@click.command("post-payment")
@common_options
@_ledger_options
@_rules_options
@click.option("--payment", "payment_json", required=True, metavar="JSON", help="The new payment.")
@click.option("--rule", "rule_name", default=None, metavar="NAME", help="Default: `default rule`.")
@_write_options
def post_payment_command(
    ledger_path: str,
    ledger_format: str | None,
    rules: tuple[str, ...],
    more_rules: tuple[str, ...],
    payment_json: str,
    rule_name: str | None,
    out: str | None,
    in_place: bool,
    preview: bool,
    explain: bool,
) -> None:
    """Add a payment and run the named rule, or the settings' default rule.

    \b
    Example:
      paysplit post-payment --ledger smith.json --rules rules/apply_automatically.rules \\
        --payment '{"id": "PAY9", "patient": "P1", "payer": "patient", "provider": "DR1",
                    "date": "2025-03-01", "amount": "150.00"}' --rule due_patient --in-place
    """
    ledger = read_ledger(ledger_path, ledger_format)
    rule_set = load_rules(_rule_paths(rules, more_rules))
    plan = ops.post_payment(
        ledger, rule_set, ops.payment_from_json(payment_json, ledger), rule_name
    )
    finish(
        plan,
        ledger,
        rules=rule_set,
        **_write_kwargs(ledger_path, ledger_format, out, in_place, preview, explain),
    )


COMMANDS: list[click.Command] = [
    apply_command,
    allocate_command,
    refund_command,
    unallocate_command,
    void_command,
    post_charge_command,
    post_payment_command,
]
