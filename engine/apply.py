"""Applying a plan to a ledger, and the history entry that records it.

:func:`apply_plan` is pure: it returns a new :class:`~paysplit.ledger.Ledger`
with the plan's records appended at the end of their lists (the order read
is kept), credit annotations set and voids marked. Nothing is deleted. The
history entry is built separately (:func:`history_entry`), because it is the
only place a wall-clock time may appear, and appended with
:func:`record_history`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping

from paysplit.errors import UsageError
from paysplit.ledger import Account, CreditNote, HistoryEntry, Ledger, Payment, Split
from paysplit.money import format_cents
from paysplit.plans import Plan, PlanDraft
from paysplit.rules import RuleSet

NOW_ENV = "PAYSPLIT_NOW"

__all__ = [
    "NOW_ENV",
    "applied_at",
    "apply_plan",
    "apply_to_account",
    "history_entry",
    "record_history",
]


def _account_of(ledger: Ledger, plan: Plan) -> dict[str, list[str]]:
    """Which account each of the plan's records belongs to: account id -> its record ids."""
    payment_home = {p.id: a.id for a in ledger.accounts for p in a.payments}
    patient_home = {p.id: a.id for a in ledger.accounts for p in a.patients}
    split_home = {s.id: a.id for a in ledger.accounts for s in a.splits}
    for payment in plan.payments:
        if payment.id not in payment_home and payment.patient in patient_home:
            payment_home[payment.id] = patient_home[payment.patient]
    touched: dict[str, list[str]] = {}

    def home(what: str, record: str, found: str | None) -> None:
        if found is None:
            raise UsageError(f"the plan's {what} {record} belongs to no account of this ledger")
        touched.setdefault(found, []).append(record)

    for charge in plan.charges:
        home("charge", charge.id, patient_home.get(charge.patient))
    for payment in plan.payments:
        home("payment", payment.id, payment_home.get(payment.id))
    for split in plan.splits:
        home("split", split.id, payment_home.get(split.payment))
        if split.id in split_home:
            raise UsageError(f"split {split.id} is already in the ledger: the plan is stale")
    for credit in plan.credits:
        home("credit on payment", credit.payment, payment_home.get(credit.payment))
    for void in plan.voids:
        home("void of payment", void.payment, payment_home.get(void.payment))
    return touched


def apply_to_account(account: Account, plan: Plan | PlanDraft) -> Account:
    """The account with the plan's records for it appended (records of other accounts ignored).

    ``plan`` may be the allocation core's :class:`~paysplit.plans.PlanDraft` (what
    ``paysplit batch`` applies between payments): the account is the same as with
    ``draft.to_plan()``.
    """
    if isinstance(plan, PlanDraft):
        return _apply_draft(account, plan)
    patients = {p.id for p in account.patients}
    own_payments = {p.id for p in account.payments} | {
        p.id for p in plan.payments if p.patient in patients
    }
    credits = {c.payment: c for c in plan.credits if c.payment in own_payments}
    voids = {v.payment: v for v in plan.voids if v.payment in own_payments}

    def updated(payment: Payment) -> Payment:
        changes: dict[str, object] = {}
        credit = credits.get(payment.id)
        if credit is not None:
            changes["credit"] = CreditNote(
                due_to="insurance" if credit.due_to == "insurance" else "patient",
                memo=credit.memo,
                provider=credit.provider,
                office=credit.office,
            )
        void = voids.get(payment.id)
        if void is not None:
            changes["void"] = True
            if void.reason:
                note = f"void: {void.reason}"
                changes["memo"] = f"{payment.memo}; {note}" if payment.memo else note
        return payment.model_copy(update=changes) if changes else payment

    payments = tuple(updated(p) for p in account.payments) + tuple(
        updated(p) for p in plan.payments if p.patient in patients
    )
    splits = tuple(
        Split(
            id=s.id,
            payment=s.payment,
            charge=s.charge,
            installment=s.installment,
            amount=format_cents(s.amount),  # a ledger amount given as text is exact cents
            date=plan.date,
            transfer=s.transfer,
            reverses=s.reverses,
            rule=s.rule if s.rule is not None else plan.rule,
        )
        for s in plan.splits
        if s.payment in own_payments
    )
    charges = tuple(c for c in plan.charges if c.patient in patients)
    return account.model_copy(
        update={
            "charges": account.charges + charges,
            "payments": payments,
            "splits": account.splits + splits,
        }
    )


def _apply_draft(account: Account, draft: PlanDraft) -> Account:
    """:func:`apply_to_account` for a draft: it has splits and credits, nothing else."""
    own_payments = {p.id for p in account.payments}
    credits = {c.payment: c for c in draft.credits if c.payment in own_payments}
    payments = account.payments
    if credits:
        payments = tuple(
            p
            if (credit := credits.get(p.id)) is None
            else p.model_copy(
                update={
                    "credit": CreditNote(
                        due_to="insurance" if credit.due_to == "insurance" else "patient",
                        memo=credit.memo,
                        provider=credit.provider,
                        office=credit.office,
                    )
                }
            )
            for p in payments
        )
    splits = tuple(
        Split(
            id=split_id,
            payment=payment,
            charge=charge,
            installment=installment,
            amount=format_cents(amount),  # a ledger amount given as text is exact cents
            date=draft.date,
            transfer=transfer,
            reverses=None,
            rule=draft.rule,
        )
        for split_id, payment, charge, installment, amount, transfer, _ in draft.splits
        if payment in own_payments
    )
    return account.model_copy(
        update={
            "charges": account.charges,
            "payments": payments,
            "splits": account.splits + splits,
        }
    )


def apply_plan(ledger: Ledger, plan: Plan) -> Ledger:
    """The ledger with the plan applied: records appended, credits set, voids marked.

    A blocked plan cannot be applied (UsageError); an empty plan gives the same ledger.
    """
    if plan.blocked is not None:
        raise UsageError(f"a blocked plan cannot be applied: {plan.blocked.reason}")
    touched = _account_of(ledger, plan)
    if not touched:
        return ledger
    accounts = tuple(
        apply_to_account(account, plan) if account.id in touched else account
        for account in ledger.accounts
    )
    return ledger.model_copy(update={"accounts": accounts})


def applied_at(environ: Mapping[str, str] | None = None) -> str:
    """``PAYSPLIT_NOW`` when set (reproducible tests), else the wall clock, to the second."""
    env = os.environ if environ is None else environ
    fixed = env.get(NOW_ENV)
    if fixed:
        return fixed
    return dt.datetime.now().replace(microsecond=0).isoformat()


def history_entry(
    plan: Plan, rules: RuleSet | None = None, *, environ: Mapping[str, str] | None = None
) -> HistoryEntry:
    """The ledger history entry for an applied plan (the only place a time appears)."""
    return HistoryEntry(
        operation=plan.operation,
        rule=plan.rule,
        rules_digest=None if rules is None else rules.digest,
        plugins={} if rules is None else dict(rules.plugins),
        applied_at=applied_at(environ),
        splits=tuple(s.id for s in plan.splits),
        payments=tuple(p.id for p in plan.payments),
        voids=tuple(v.payment for v in plan.voids),
        charges=tuple(c.id for c in plan.charges),
        credits=tuple(c.payment for c in plan.credits),
    )


def record_history(ledger: Ledger, entry: HistoryEntry) -> Ledger:
    """The ledger with ``entry`` appended to its history."""
    return ledger.model_copy(update={"history": (*ledger.history, entry)})
