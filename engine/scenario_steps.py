"""One step of a scenario: the operation it names, and what must hold after it.

This module owns carrying out a :class:`~paysplit.scenario_file.Step` on a
ledger (:func:`run_step`: post a payment or a charge, apply a rule, allocate,
refund, unallocate or void, each through :mod:`paysplit.operations`, exactly as
the command line does), :class:`StepOutcome` (what a step did), which rules a
step ran (for coverage), and the checks made after every applied step whatever
the scenario expects (:func:`after_step_problems`): the invariants of
``docs/semantics.md``, that the ledger shows the unallocated amounts the plan
predicted, that every transfer's legs net to zero, and that the ledger survives
being written and read again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from paysplit.errors import PaysplitError, UsageError
from paysplit.figures import AccountFigures
from paysplit.ledger import Ledger
from paysplit.money import Cents, format_cents
from paysplit.plans import Plan
from paysplit.rules import RuleSet
from paysplit.scenario_file import Step

__all__ = [
    "StepOutcome",
    "after_step_problems",
    "ran_rules",
    "run_step",
    "strict_problems",
    "unallocated_amounts",
]


@dataclass(frozen=True)
class StepOutcome:
    """What one step did."""

    index: int
    step: Step
    plan: Plan | None
    error: PaysplitError | None
    ledger: Ledger
    """The ledger after the step (unchanged when it was blocked or failed)."""

    @property
    def label(self) -> str:
        return f"step {self.index} ({self.step.kind}, line {self.step.line})"


# -- carrying a step out ---------------------------------------------------------------
def _text(args: Mapping[str, Any], key: str) -> str | None:
    value = args.get(key)
    return None if value is None else str(value)


def _date(args: Mapping[str, Any], key: str) -> dt.date | None:
    value = args.get(key)
    return None if value is None else dt.date.fromisoformat(str(value).strip())


def run_step(ledger: Ledger, rules: RuleSet, step: Step) -> Plan:
    """The plan a step makes on ``ledger`` (not yet applied)."""
    # Imported when a step runs: the pytest plugin (a pytest11 entry point) imports the
    # scenario modules at every pytest start, scenario files or not.
    from paysplit import operations

    args = step.args
    kind = step.kind
    if kind == "post_payment":
        payment = operations.payment_from_json(dict(args), ledger)
        return operations.post_payment(ledger, rules, payment, step.rule)
    if kind == "post_charge":
        charge = operations.charge_from_json(dict(args), ledger)
        return operations.post_charge(ledger, rules, charge)
    if kind == "apply":
        new_payment = None
        if args.get("new_payment") is not None:
            new_payment = operations.payment_from_json(dict(args["new_payment"]), ledger)
        charges = args.get("charges")
        charge_ids = None if charges is None else [str(c) for c in charges]
        payment_id = _text(args, "payment")
        account_id = _text(args, "account")
        if payment_id is None and new_payment is None and account_id is None:
            account_id = _infer_account(ledger, charge_ids)
        return operations.apply_rule(
            ledger,
            rules,
            step.rule,
            payment_id=payment_id,
            new_payment=new_payment,
            account_id=account_id,
            charge_ids=charge_ids,
            as_of=_date(args, "as_of"),
        )
    if kind == "allocate":
        return operations.allocate_manual(
            ledger,
            rules,
            str(args.get("payment")),
            charge_id=_text(args, "charge"),
            installment_id=_text(args, "installment"),
            appointment_id=_text(args, "appointment"),
            amount=str(args.get("amount")),
        )
    if kind == "refund":
        return operations.refund(
            ledger,
            rules,
            payment_id=_text(args, "payment"),
            patient_id=_text(args, "patient"),
            amount=str(args.get("amount")),
            date=_date(args, "date"),
            method=_text(args, "method"),
            provider=_text(args, "provider"),
            memo=_text(args, "memo"),
        )
    if kind == "unallocate":
        amount = args.get("amount")
        return operations.unallocate(
            ledger, str(args.get("split")), None if amount is None else str(amount)
        )
    if kind == "void":
        return operations.void(ledger, str(args.get("payment")), _text(args, "reason"))
    raise UsageError(f"unknown step {kind}")  # pragma: no cover - the reader refuses it


def _infer_account(ledger: Ledger, charge_ids: Sequence[str] | None) -> str:
    """The account an ``apply`` without payment or account means: the selected charges'
    account, else the ledger's only account."""
    if charge_ids:
        for account in ledger.accounts:
            owned = {c.id for c in account.charges} | {
                i.id for plan in account.plans for i in plan.installments
            }
            if charge_ids[0] in owned:
                return account.id
        raise UsageError(f"{charge_ids[0]} is not a charge or installment of the ledger")
    if len(ledger.accounts) == 1:
        return ledger.accounts[0].id
    raise UsageError(
        "apply needs a payment, a new_payment or an account: the ledger has "
        f"{len(ledger.accounts)} accounts"
    )


def ran_rules(rules: RuleSet, step: Step, plan: Plan | None) -> list[str]:
    """The rules a step ran (for coverage): the plan's, else the one the step asked for."""
    if plan is not None:
        if plan.rule:
            return [name.strip() for name in plan.rule.split(",") if name.strip()]
        return []
    if step.kind in ("apply", "post_payment"):
        name = step.rule or rules.settings.default_rule
        return [name] if name else []
    return []


# -- what must hold after a step ------------------------------------------------------------
def strict_problems(ledger: Ledger) -> frozenset[str]:
    """Over-allocated payments and over-paid charges (allowed only with a warning)."""
    from paysplit.invariants import check_invariants

    strict = check_invariants(
        ledger, allow_negative_unallocated=False, allow_overpaid_charges=False
    )
    lenient = {str(p) for p in check_invariants(ledger)}
    return frozenset(str(p) for p in strict if str(p) not in lenient)


def unallocated_amounts(ledger: Ledger, payment_ids: Iterable[str]) -> dict[str, Cents | None]:
    """Each payment's unallocated amount as the ledger shows it; None for no such payment."""
    figures = {a.id: AccountFigures.of(a) for a in ledger.accounts}

    def unallocated(payment_id: str) -> Cents | None:
        for account in ledger.accounts:
            for payment in account.payments:
                if payment.id == payment_id:
                    return figures[account.id].unallocated(payment)
        return None

    return {payment_id: unallocated(payment_id) for payment_id in payment_ids}


def after_step_problems(
    outcome: StepOutcome, strict_before: frozenset[str], allowed_negative: bool
) -> list[str]:
    """The invariants, plus what the plan promised, after one applied step.

    ``strict_before`` are the over-allocations the ledger already had; a new one is
    a problem unless a step so far warned about it (``allowed_negative``).
    """
    from paysplit.invariants import check_invariants
    from paysplit.ledger_io import dump_ledger, parse_ledger_text

    plan = outcome.plan
    assert plan is not None
    after = outcome.ledger
    problems = [str(p) for p in check_invariants(after)]
    if not allowed_negative:
        problems += sorted(strict_problems(after) - strict_before)
    for transfer in plan.transfers:
        total = sum(leg.amount for leg in transfer.legs)
        if total != 0:
            problems.append(
                f"transfer {transfer.id}: its legs net to {format_cents(total)}, not 0.00"
            )
    shown_by_ledger = unallocated_amounts(after, plan.unallocated)
    for payment_id, predicted in plan.unallocated.items():
        actual = shown_by_ledger[payment_id]
        if actual != predicted:
            shown = "nothing" if actual is None else format_cents(actual)
            problems.append(
                f"the plan said {payment_id} would have {format_cents(predicted)} "
                f"unallocated; the ledger shows {shown}"
            )
    try:
        reread = parse_ledger_text(dump_ledger(after), "the ledger after the step")
    except PaysplitError as exc:
        problems.append(f"the ledger after the step cannot be read back: {exc}")
    else:
        if reread != after:
            problems.append("the ledger after the step reads back differently once written")
    return problems
