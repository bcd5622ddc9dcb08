"""The targets of a plan being built: what each charge and installment may still take.

:class:`Room` answers, for the plan so far, how much a charge or an
installment may still be paid, makes the :class:`~paysplit.policy.Target`
view the clauses see, and puts an amount on a target as splits (over a
payment plan's charges, for an installment). :func:`unpaid_reason` says why
a target with nothing allocatable is never paid. Both a rule run and an
allocation by hand use them.
"""

from __future__ import annotations

import datetime as dt

from paysplit.figures import AccountFigures
from paysplit.ledger import Account, Charge, Installment, Payment, PaymentPlan
from paysplit.money import Cents, format_cents
from paysplit.plan_splits import Splits
from paysplit.policy import Target

__all__ = ["Room", "charge_amounts", "charge_unpaid_reason", "unpaid_reason"]


def charge_amounts(
    before: Cents, estimate: Cents, payer: str, paid: Cents
) -> tuple[Cents, Cents, Cents]:
    """A charge's balance, patient balance and what it may still take, once it has taken
    ``paid`` in this plan: ``before`` is its balance before the operation. Insurance may
    pay the whole balance; a patient's credit only what the estimate leaves."""
    if payer == "insurance":
        allocatable = before if before > 0 else 0
    else:
        allocatable = before - estimate
        if allocatable < 0:
            allocatable = 0
    room = allocatable - paid
    balance = before - paid
    patient_balance = balance - estimate
    return (
        balance,
        patient_balance if patient_balance > 0 else 0,
        room if room > 0 else 0,
    )


class Room:
    """What each charge and installment may still take, given the plan so far.

    Each charge's balance before the operation (amount + attached adjustments -
    splits, as :meth:`AccountFigures.balance`) is computed once per run; what the
    plan has put on it so far is ``made.by_charge``.
    """

    __slots__ = ("account", "balances", "charges", "figures", "made")

    def __init__(
        self, account: Account, figures: AccountFigures, made: Splits, charges: dict[str, Charge]
    ) -> None:
        self.account = account
        self.figures = figures
        self.made = made
        self.charges = charges
        self.balances: dict[str, Cents] = {}

    def balance(self, charge: Charge) -> Cents:
        """The charge's balance before the operation (``figures.balance``), kept once read."""
        balance = self.balances.get(charge.id)
        if balance is None:
            balance = self.balances[charge.id] = self.figures.balance(charge)
        return balance

    def charge_room(self, charge: Charge, payer: str) -> Cents:
        paid = self.made.by_charge.get(charge.id, 0)
        return charge_amounts(self.balance(charge), charge.insurance_estimate, payer, paid)[2]

    def charge_target(
        self, charge: Charge, payer: str, position: int, run_date: dt.date, paid: Cents
    ) -> Target:
        """The view of a charge (not an installment) that has taken ``paid`` in this plan."""
        balance, patient_balance, allocatable = charge_amounts(
            self.balance(charge), charge.insurance_estimate, payer, paid
        )
        return Target(
            charge=charge,
            installment=None,
            plan=None,
            balance=balance,
            patient_balance=patient_balance,
            allocatable=allocatable,
            age=(run_date - charge.date).days,
            position=position,
        )

    def plan_charges(self, plan: PaymentPlan) -> list[Charge]:
        return [self.charges[c] for c in plan.charges if c in self.charges]

    def installment_left(self, installment: Installment) -> Cents:
        return self.figures.installment_balance(installment) - self.made.by_installment.get(
            installment.id, 0
        )

    def installment_room(self, plan: PaymentPlan, installment: Installment, payer: str) -> Cents:
        plan_room = sum(self.charge_room(c, payer) for c in self.plan_charges(plan))
        return max(0, min(self.installment_left(installment), plan_room))

    def target(
        self,
        charge: Charge,
        payer: str,
        position: int,
        run_date: dt.date,
        plan: PaymentPlan | None = None,
        installment: Installment | None = None,
    ) -> Target:
        """A view of the target as it stands now, the plan's splits so far included."""
        if plan is not None and installment is not None:
            owing = [c for c in self.plan_charges(plan) if self.charge_room(c, payer) > 0]
            shown = owing[0] if owing else charge
            left = self.installment_left(installment)
            return Target(
                charge=shown,
                installment=installment,
                plan=plan,
                balance=left,
                patient_balance=max(0, left),
                allocatable=self.installment_room(plan, installment, payer),
                age=(run_date - installment.due).days,
                position=position,
            )
        return self.charge_target(
            charge, payer, position, run_date, self.made.by_charge.get(charge.id, 0)
        )

    def put(self, payment: Payment, target: Target, amount: Cents, payer: str) -> list[str]:
        """Make the splits that move ``amount`` of ``payment`` to ``target``; their ids."""
        if target.installment is None or target.plan is None:
            return [self.made.add(payment, target.charge.id, None, amount)]
        made: list[str] = []
        left = amount
        plan_charges = self.plan_charges(target.plan) or [target.charge]
        for charge in plan_charges:
            if left <= 0:
                break
            take = min(left, self.charge_room(charge, payer))
            if take > 0:
                made.append(self.made.add(payment, charge.id, target.installment.id, take))
                left -= take
        if left > 0:  # only a manual over-allocation a setting allowed gets here
            last = plan_charges[-1]
            made.append(self.made.add(payment, last.id, target.installment.id, left))
        return made


def unpaid_reason(target: Target, room: Room, payer: str) -> str:
    """Why a target whose allocatable amount is 0 is never a target (002)."""
    if target.installment is not None:
        if room.installment_left(target.installment) <= 0:
            return f"installment {target.installment.id} is paid in full"
        plan_id = target.plan.id if target.plan is not None else "?"
        return f"the charges of plan {plan_id} are paid in full"
    charge = target.charge
    return charge_unpaid_reason(
        charge, room.balance(charge) - room.made.by_charge.get(charge.id, 0), payer
    )


def charge_unpaid_reason(charge: Charge, balance: Cents, payer: str) -> str:
    """Why a charge with this balance takes nothing from this payer (its allocatable
    amount is 0): :func:`unpaid_reason` for a charge."""
    if balance <= 0:
        return f"{charge.id} is paid in full"
    if payer != "insurance" and charge.insurance_estimate > 0:
        return (
            f"{charge.id} is expected to be paid by insurance "
            f"(estimate {format_cents(charge.insurance_estimate)} covers the "
            f"{format_cents(balance)} balance)"
        )
    return f"{charge.id} owes nothing more"  # pragma: no cover - balance > 0 means owing
