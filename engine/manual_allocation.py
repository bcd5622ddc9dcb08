"""Manual allocation: an amount of one payment put by hand on a chosen target.

:func:`allocate_by_hand` takes a :class:`ManualRequest` (a charge, an
installment or an appointment, and an amount) and returns the plan. No rule
runs: the settings' guards check the operation and each proposed split, and
what a guard does not speak to (over-allocating the payment, over-paying a
charge) still leaves a warning on the plan. Like a rule run, it is pure: same
input, same plan.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from paysplit.clause_calls import call_clause, refuse
from paysplit.errors import UsageError
from paysplit.figures import AccountFigures
from paysplit.ledger import Account, Charge, Payment
from paysplit.money import Cents, format_cents
from paysplit.plan_splits import PlanIds, Splits, added_by, unallocated
from paysplit.plans import BlockedReason, Plan, PlanDraft, PlanWarning, TraceRow
from paysplit.policy import Guard, Operation, ProposedSplit, Refuse, Target, Warn
from paysplit.rules import CompiledClause
from paysplit.target_views import Room, unpaid_reason

__all__ = ["ManualRequest", "TargetKind", "allocate_by_hand"]

TargetKind = Literal["charge", "installment", "appointment"]


@dataclass(frozen=True)
class ManualRequest:
    """Allocate ``amount`` of ``payment`` by hand to a charge, an installment or an appointment."""

    account: Account
    payment: Payment
    target_kind: TargetKind
    target_id: str
    amount: Cents
    run_date: dt.date
    settings_guards: tuple[CompiledClause[Guard], ...] = ()
    default_unearned_type: str = "prepayment"
    new_payments: frozenset[str] = frozenset()
    reserved_ids: frozenset[str] = frozenset()


def allocate_by_hand(request: ManualRequest) -> Plan:
    """Allocate an amount of one payment to a charge, an installment or an appointment.

    Each proposed split is checked by the settings' guards: a refusal refuses
    the whole operation (a plan with ``blocked``), a warning goes on the plan.
    When no guard spoke, over-allocating the payment or over-paying a charge
    still leaves a warning: the plan never does that silently.
    """
    account = request.account
    payment = request.payment
    figures = AccountFigures.of(account)
    made = Splits(
        ids=PlanIds.of(account, request.reserved_ids),
        new_payments=request.new_payments,
        default_unearned_type=request.default_unearned_type,
        rule=None,
    )
    room = Room(account, figures, made, {c.id: c for c in account.charges})
    payer = payment.payer
    trace: list[TraceRow] = []
    warnings: list[PlanWarning] = []

    def finish(blocked: BlockedReason | None = None) -> Plan:
        splits = [] if blocked is not None else made.splits
        return PlanDraft(
            operation="allocate",
            rule=None,
            blocked=blocked,
            splits=splits,
            credits=(),
            unallocated=unallocated(figures, [payment.id], added_by(splits)),
            warnings=tuple(warnings),
            trace=trace,
            date=request.run_date,
        ).to_plan()

    proposals: list[tuple[Target, Cents]] = []
    last_notes: list[TraceRow] = []
    charges: tuple[Charge, ...]
    positions = {c.id: n for n, c in enumerate(account.charges)}
    if request.target_kind == "charge":
        charge = room.charges[request.target_id]
        target = room.target(charge, payer, positions[charge.id], request.run_date)
        proposals.append((target, request.amount))
        charges = (charge,)
    elif request.target_kind == "installment":
        plan, installment = figures.installments[request.target_id]
        plan_charges = room.plan_charges(plan)
        if not plan_charges:
            raise UsageError(
                f"plan {plan.id} has no charges for installment {installment.id} to pay"
            )
        target = room.target(
            plan_charges[0], payer, 0, request.run_date, plan=plan, installment=installment
        )
        proposals.append((target, request.amount))
        charges = tuple(plan_charges)
    else:
        charges = tuple(c for c in account.charges if c.appointment == request.target_id)
        left = request.amount
        for charge in charges:
            target = room.target(charge, payer, positions[charge.id], request.run_date)
            take = min(left, target.allocatable)
            if take <= 0:
                reason = (
                    unpaid_reason(target, room, payer)
                    if left > 0
                    else f"nothing left of the {format_cents(request.amount)} to pay {charge.id}"
                )
                trace.append((payment.id, charge.id, False, 0, reason, None))
                continue
            proposals.append((target, take))
            left -= take
        if left > 0:
            last_notes.append(
                (
                    payment.id,
                    request.target_id,
                    False,
                    left,
                    f"{format_cents(left)} stays unallocated on {payment.id} as appointment "
                    f"{request.target_id}'s unallocated payment",
                    None,
                )
            )
        if not charges:
            warnings.append(
                PlanWarning(
                    message=f"appointment {request.target_id} has no charges yet: "
                    f"the payment stays unallocated until it has some"
                )
            )

    operation = Operation(
        name="allocate",
        account=account,
        figures=figures,
        run_date=request.run_date,
        payment=payment,
        patients=frozenset(c.patient for c in charges),
        charges=charges,
        manual=True,
    )
    for guard in request.settings_guards:
        verdict_text = call_clause(guard, "check_operation", guard.impl.check_operation, operation)
        if verdict_text is not None:
            return finish(
                BlockedReason(
                    reason=str(verdict_text), clause=str(guard.location), plugin=guard.plugin
                )
            )

    credit_left = figures.unallocated(payment)
    for target, amount in proposals:
        proposed = ProposedSplit(
            payment=payment,
            target=target,
            amount=amount,
            credit_left=credit_left,
            manual=True,
            run_date=request.run_date,
        )
        spoke = False
        for guard in request.settings_guards:
            verdict = call_clause(guard, "check_split", guard.impl.check_split, proposed)
            if verdict is None:
                continue
            if isinstance(verdict, Refuse):
                trace.append((payment.id, target.id, False, 0, verdict.reason, str(guard.location)))
                return finish(
                    BlockedReason(
                        reason=verdict.reason, clause=str(guard.location), plugin=guard.plugin
                    )
                )
            if isinstance(verdict, Warn):
                spoke = True
                warning = PlanWarning(message=verdict.message, clause=str(guard.location))
                if warning not in warnings:
                    warnings.append(warning)
                continue
            raise refuse(
                guard, f"returned {verdict!r} from check_split (expected Refuse, Warn or None)"
            )
        if not spoke:
            if amount > credit_left:
                warnings.append(
                    PlanWarning(
                        message=f"allocating {format_cents(amount)} of payment {payment.id} "
                        f"leaves {format_cents(credit_left - amount)} unallocated: only "
                        f"{format_cents(credit_left)} was available"
                    )
                )
            if amount > target.allocatable:
                warnings.append(
                    PlanWarning(
                        message=f"{format_cents(amount)} is more than the "
                        f"{format_cents(target.allocatable)} that {target.id} still allows"
                    )
                )
        room.put(payment, target, amount, payer)
        credit_left -= amount
        trace.append(
            (
                payment.id,
                target.id,
                True,
                amount,
                f"allocated by hand: {format_cents(amount)} of the "
                f"{format_cents(target.allocatable)} due",
                None,
            )
        )
    trace.extend(last_notes)
    return finish()
