"""The splits a plan is building: their ids, their rows, and what stays unallocated.

Both ways in to the allocation core (a rule run, an allocation by hand)
record their splits here: :class:`PlanIds` gives each new split and income
transfer a deterministic id, :class:`Splits` keeps the rows of the plan being
built with what each charge, installment and payment has taken so far, and
:func:`unallocated_after` / :func:`unallocated` say what each payment has left
once the plan's splits are added.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from paysplit.figures import AccountFigures
from paysplit.ledger import Account, Payment
from paysplit.money import Cents
from paysplit.plans import PlannedSplit, SplitRow

__all__ = ["PlanIds", "Splits", "added_by", "unallocated", "unallocated_after"]


@dataclass
class PlanIds:
    """Deterministic ids for new splits (``PAY1-3``) and transfers (``T-PAY1-3``)."""

    account: Account
    reserved: set[str]
    counters: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, account: Account, reserved: Iterable[str] = ()) -> PlanIds:
        taken = {s.id for s in account.splits} | set(reserved)
        return cls(account=account, reserved=taken)

    def next_split(self, payment_id: str) -> str:
        if payment_id not in self.counters:
            self.counters[payment_id] = sum(
                1 for s in self.account.splits if s.payment == payment_id
            )
        while True:
            self.counters[payment_id] += 1
            candidate = f"{payment_id}-{self.counters[payment_id]}"
            if candidate not in self.reserved:
                self.reserved.add(candidate)
                return candidate


@dataclass
class Splits:
    """The splits a plan is building (as rows), with what each charge has taken.

    Each split with a transfer id is also an income transfer; its two legs are
    made from the row when the plan is (:class:`~paysplit.plans.PlanDraft`).
    """

    ids: PlanIds
    new_payments: frozenset[str]
    default_unearned_type: str
    rule: str | None
    splits: list[SplitRow] = field(default_factory=list)
    by_charge: dict[str, Cents] = field(default_factory=dict)
    by_installment: dict[str, Cents] = field(default_factory=dict)
    by_payment: dict[str, Cents] = field(default_factory=dict)

    def add(self, payment: Payment, charge: str, installment: str | None, amount: Cents) -> str:
        """Record one split; its id."""
        payment_id = payment.id
        split_id = self.ids.next_split(payment_id)
        transfer_id = None if payment_id in self.new_payments else f"T-{split_id}"
        self.splits.append(
            (
                split_id,
                payment_id,
                charge,
                installment,
                amount,
                transfer_id,
                payment.unearned_type or self.default_unearned_type,
            )
        )
        by_charge = self.by_charge
        by_charge[charge] = by_charge.get(charge, 0) + amount
        if installment is not None:
            self.by_installment[installment] = self.by_installment.get(installment, 0) + amount
        self.by_payment[payment_id] = self.by_payment.get(payment_id, 0) + amount
        return split_id


def unallocated_after(
    figures: AccountFigures, payment_ids: Iterable[str], splits: Sequence[PlannedSplit]
) -> dict[str, Cents]:
    """Each payment's unallocated amount once ``splits`` are added, in ledger order."""
    added: dict[str, Cents] = {}
    for split in splits:
        added[split.payment] = added.get(split.payment, 0) + split.amount
    return unallocated(figures, payment_ids, added)


def unallocated(
    figures: AccountFigures, payment_ids: Iterable[str], added: dict[str, Cents]
) -> dict[str, Cents]:
    """Each payment's unallocated amount less ``added`` (cents by payment id), in ledger order."""
    wanted = set(payment_ids)
    return {
        payment.id: figures.unallocated(payment) - added.get(payment.id, 0)
        for payment in figures.account.payments
        if payment.id in wanted
    }


def added_by(rows: Sequence[SplitRow]) -> dict[str, Cents]:
    """The cents split rows add to each payment (a row's payment id, then its amount)."""
    added: dict[str, Cents] = {}
    for row in rows:
        added[row[1]] = added.get(row[1], 0) + row[4]
    return added
