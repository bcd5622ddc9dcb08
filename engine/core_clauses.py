"""The clauses that are core syntax: ``from payment|unallocated|unearned``, the orders.

They implement the same base classes as plugin phrases (:mod:`paysplit.policy`),
so the allocation core treats every clause alike. Nothing here names a
practice policy; those live in ``paysplit.plugins``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from paysplit.ledger import Charge, Payment
from paysplit.policy import Order, Source, SourceRequest, Target


class PaymentSource(Source):
    """``from payment``: the payment the rule is applied to (the default)."""

    pooled = False

    def credit(self, request: SourceRequest) -> Sequence[Payment]:
        return () if request.payment is None else (request.payment,)


@dataclass(frozen=True)
class PoolSource(Source):
    """``from unallocated`` / ``from unearned [type NAME]``: credit already posted.

    Returns every payment of the account with credit due to the patient, oldest
    payment first (ties by ledger order). Which of them may pay a given target
    (its own patient's, a guarantor's, the whole account's) is decided by the
    rule's scope clauses in the allocation core.
    """

    unearned_type: str | None = None

    pooled = True

    def credit(self, request: SourceRequest) -> Sequence[Payment]:
        figures = request.figures
        pool = [
            (payment.date, position, payment)
            for position, payment in enumerate(request.account.payments)
            if figures.credit_due_to_patient(payment) > 0
            and (
                self.unearned_type is None
                or (payment.unearned_type or request.default_unearned_type) == self.unearned_type
            )
        ]
        pool.sort(key=lambda entry: (entry[0], entry[1]))
        return [payment for _, _, payment in pool]


class OldestFirst(Order):
    """Service date (an installment's due date), oldest first."""

    def sort_key(self, target: Target) -> Any:
        return _date_of(target).toordinal()

    def charge_form(self) -> Callable[[Charge], Any]:
        return _oldest_charge_first


class NewestFirst(Order):
    def sort_key(self, target: Target) -> Any:
        return -_date_of(target).toordinal()

    def charge_form(self) -> Callable[[Charge], Any]:
        return _newest_charge_first


def _oldest_charge_first(charge: Charge) -> int:
    return charge.date.toordinal()


def _newest_charge_first(charge: Charge) -> int:
    return -charge.date.toordinal()


TOTAL_CHARGE_KEYS = frozenset({_oldest_charge_first, _newest_charge_first})
"""The stock orders' charge forms: a whole number for every charge, never an error. The
fast path asks them only about the charges it may pay; a vendor's form is asked about
every charge in scope, as the general path asks its order."""


class LargestFirst(Order):
    """By what the credit may still put on the target, largest first."""

    def sort_key(self, target: Target) -> Any:
        return -target.allocatable


class SmallestFirst(Order):
    def sort_key(self, target: Target) -> Any:
        return target.allocatable


@dataclass(frozen=True)
class FieldOrder(Order):
    """``order by FIELD [asc|desc]``: one key of an explicit order."""

    field: str
    value_of: Callable[[Target], Any]
    descending: bool = False

    def sort_key(self, target: Target) -> Any:
        value = self.value_of(target)
        return Descending(value) if self.descending else Ascending(value)


def _date_of(target: Target) -> Any:
    return target.installment.due if target.installment is not None else target.charge.date


@dataclass(frozen=True, slots=True)
class Ascending:
    """A sort key that puts missing values (None) last."""

    value: Any

    def __lt__(self, other: Ascending) -> bool:
        if self.value is None or other.value is None:
            return self.value is not None and other.value is None
        return bool(self.value < other.value)


@dataclass(frozen=True, slots=True)
class Descending:
    """A sort key that reverses any comparable value (dates, text, money), None last."""

    value: Any

    def __lt__(self, other: Descending) -> bool:
        if self.value is None or other.value is None:
            return self.value is not None and other.value is None
        return bool(other.value < self.value)
