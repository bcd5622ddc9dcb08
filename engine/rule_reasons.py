"""What a rule run says: the sentences of its trace and warnings, and its leftover credit.

A rule runs on one of two paths (:mod:`paysplit.allocation`, any rule through the
clause contract, run by :mod:`paysplit.rule_run` and its steps;
:mod:`paysplit.rule_kernel`, a simple rule on the charges themselves), and both
must say the same thing, byte for byte. So each sentence a rule run writes on its
own behalf (a clause's reasons are the clause's) is made here, once, and so is the
credit a leftover handler's note becomes.
"""

from __future__ import annotations

from collections.abc import Sequence

from paysplit.ledger import Charge, CreditNote
from paysplit.money import Cents, format_cents
from paysplit.plans import PlannedCredit

__all__ = [
    "kind_not_admitted",
    "leftover_credit",
    "nothing_left",
    "nothing_to_do",
    "nothing_unallocated",
    "out_of_scope_end",
    "paid",
]


def out_of_scope_end(patient: str, rule: str, patients: Sequence[str]) -> str:
    """The end of ``"<target> is a charge of <patient>, ..."``: why a rule whose payment
    pays ``patients``' charges skips one of ``patient``'s (the target id goes first)."""
    return (
        f" is a charge of {patient}, and rule {rule} pays only charges of "
        f"{', '.join(patients)} (no scope clause includes {patient})"
    )


def kind_not_admitted(charge: Charge) -> str:
    """Why a charge of an opt-in kind that no scope clause admits is not a target."""
    return (
        f"{charge.id} is of kind {charge.kind}, which is a target only when a scope clause "
        "of the rule admits it"
    )


def paid(amount: Cents, due: Cents) -> str:
    """A split's trace entry: ``amount`` of the ``due`` the target allowed."""
    return f"paid {format_cents(amount)} of the {format_cents(due)} due"


def nothing_left(payment: str, target: str) -> str:
    """Why a target the payment may pay got nothing: its credit ran out first."""
    return f"nothing left of {payment} to pay {target}"


def nothing_unallocated(payment: str) -> str:
    """The warning of a run on a payment with no unallocated credit."""
    return f"payment {payment} has nothing unallocated: nothing to do"


def nothing_to_do(rule: str, candidates: bool, eligible: bool) -> str:
    """The warning of a run with credit that made no split: no candidate in scope, every
    candidate skipped, or none paid (the trace says why)."""
    if not candidates:
        return f"rule {rule} found no charge to pay: nothing to do"
    if not eligible:
        return f"rule {rule} found nothing to pay: every candidate was skipped (see the trace)"
    return f"rule {rule} made no split: see the trace for why"


def leftover_credit(payment: str, amount: Cents, note: CreditNote) -> PlannedCredit:
    """The credit annotation a leftover handler's ``note`` puts on ``amount`` of a payment."""
    return PlannedCredit(
        payment=payment,
        amount=amount,
        due_to=note.due_to,
        memo=note.memo,
        provider=note.provider,
        office=note.office,
    )
