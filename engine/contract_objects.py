"""The core's fast makers of the contract's objects: a ``Target`` view, a ``ProposedSplit``.

A rule run builds a view of every candidate (:mod:`paysplit.rule_targets`) and a
proposed split for every split it weighs (:mod:`paysplit.rule_credit`), so how they
are made is on the hot path of ``paysplit batch``. :func:`make_target` and
:func:`make_proposed` take the same keyword arguments as the
:class:`~paysplit.policy.Target` and :class:`~paysplit.policy.ProposedSplit`
constructors and make the same objects, in half the time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
from collections.abc import Callable
from typing import Any

from paysplit.ledger import Charge, Installment, Payment, PaymentPlan
from paysplit.money import Cents
from paysplit.policy import ProposedSplit, Target

__all__ = ["make_proposed", "make_target"]


def _setters(cls: type[Any], names: tuple[str, ...]) -> list[Callable[[Any, Any], None]] | None:
    """The slot setters of a frozen slots dataclass whose fields are exactly ``names``
    (all required), or None when the class does not have that shape."""
    fields = dataclasses.fields(cls)
    slots = [cls.__dict__.get(name) for name in names]
    if (
        tuple(f.name for f in fields) != names
        or hasattr(cls, "__post_init__")
        or any(
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            for f in fields
        )
        or not all(isinstance(slot, types.MemberDescriptorType) for slot in slots)
    ):
        return None  # pragma: no cover - only if the contract's classes change shape
    return [slot.__set__ for slot in slots if slot is not None]


# The core builds a view of every candidate and a proposed split for every split it
# weighs. A frozen dataclass's ``__init__`` sets each field through
# ``object.__setattr__``; these set the same slots through their descriptors, in half
# the time. The objects are the same (equal, same hash and repr); should ``Target`` or
# ``ProposedSplit`` change shape, their own constructors are used.


def _target_maker() -> Callable[..., Target]:
    setters = _setters(Target, _TARGET_FIELDS)
    if setters is None:
        return Target  # pragma: no cover
    set_charge, set_installment, set_plan, set_balance = setters[:4]
    set_patient_balance, set_allocatable, set_age, set_position = setters[4:]
    new = object.__new__

    def make(
        *,
        charge: Charge,
        installment: Installment | None,
        plan: PaymentPlan | None,
        balance: Cents,
        patient_balance: Cents,
        allocatable: Cents,
        age: int,
        position: int,
    ) -> Target:
        view: Target = new(Target)
        set_charge(view, charge)
        set_installment(view, installment)
        set_plan(view, plan)
        set_balance(view, balance)
        set_patient_balance(view, patient_balance)
        set_allocatable(view, allocatable)
        set_age(view, age)
        set_position(view, position)
        return view

    return make


def _proposed_maker() -> Callable[..., ProposedSplit]:
    setters = _setters(ProposedSplit, _PROPOSED_FIELDS)
    if setters is None:
        return ProposedSplit  # pragma: no cover
    set_payment, set_target, set_amount, set_credit_left, set_manual, set_run_date = setters
    new = object.__new__

    def make(
        *,
        payment: Payment,
        target: Target,
        amount: Cents,
        credit_left: Cents,
        manual: bool,
        run_date: dt.date,
    ) -> ProposedSplit:
        proposed: ProposedSplit = new(ProposedSplit)
        set_payment(proposed, payment)
        set_target(proposed, target)
        set_amount(proposed, amount)
        set_credit_left(proposed, credit_left)
        set_manual(proposed, manual)
        set_run_date(proposed, run_date)
        return proposed

    return make


_TARGET_FIELDS = (
    "charge",
    "installment",
    "plan",
    "balance",
    "patient_balance",
    "allocatable",
    "age",
    "position",
)
_PROPOSED_FIELDS = ("payment", "target", "amount", "credit_left", "manual", "run_date")
make_target = _target_maker()
make_proposed = _proposed_maker()
