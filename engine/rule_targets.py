"""What a rule run may pay, and in what order: its candidates, their views, their checks.

The charges (or installments) in the rule's scope become candidates
(:class:`Candidate`); the others are traced and dropped. Each candidate is seen
through a :class:`~paysplit.policy.Target` view of what it may still take (a
charge's view is kept until it takes a split), put in the rule's order
(preferred targets first, ties by ledger position), and checked before any
credit is looked at: the kind, the filters, the source's own limit, what it
still allows. A distribution clause's proposal is checked here too. These are
steps 1, 3 and 4 of ``docs/semantics.md`` on the targets' side;
:mod:`paysplit.rule_credit` is the credit's side, and :mod:`paysplit.rule_run`
runs the steps in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from paysplit.clause_calls import call_clause, call_each, refuse
from paysplit.contract_objects import make_target
from paysplit.core_clauses import OldestFirst
from paysplit.ledger import Charge, Installment, PaymentPlan
from paysplit.money import Cents, format_cents
from paysplit.policy import Target
from paysplit.rule_reasons import kind_not_admitted, out_of_scope_end
from paysplit.rule_run_state import RunState
from paysplit.target_views import charge_amounts, unpaid_reason

__all__ = ["Candidate", "TargetSteps"]

_oldest_first = OldestFirst().sort_key
"""The order of a rule that names none."""


class Candidate:
    """A charge (or an installment) the rule may pay, with its last view."""

    __slots__ = ("charge", "id", "installment", "paid", "plan", "position", "seen")

    def __init__(
        self,
        charge: Charge,
        position: int,
        plan: PaymentPlan | None = None,
        installment: Installment | None = None,
    ) -> None:
        self.charge = charge
        self.position = position
        self.plan = plan
        self.installment = installment
        self.id = installment.id if installment is not None else charge.id
        self.seen: Target | None = None
        """The last view of a charge candidate, and what the plan had put on it then."""
        self.paid: Cents = 0


class TargetSteps(RunState):
    """The steps of a rule run on the targets' side (a :class:`~paysplit.rule_run.RuleRun`
    is one)."""

    def scope_patients(self, patient: str) -> list[str]:
        """The payment's patient and every patient a scope clause adds, in ledger order."""
        known = [p.id for p in self.account.patients]
        wanted = {patient}
        for scope in self.rule.scopes:
            added = call_clause(
                scope, "target_patients", scope.impl.target_patients, self.account, patient
            )
            for other in added:
                if other not in known:
                    raise refuse(scope, f"named {other!r}, which is not a patient of this account")
                wanted.add(other)
        return [p for p in known if p in wanted]

    def selected(self, candidate: Candidate) -> bool:
        chosen = self.request.charge_ids
        if chosen is None:
            return True
        if candidate.id in chosen or candidate.charge.id in chosen:
            return True
        return candidate.plan is not None and any(c in chosen for c in candidate.plan.charges)

    def candidates(self, patients: Sequence[str]) -> list[Candidate]:
        """Charges (or installments) in scope; out-of-scope ones are traced and dropped."""
        in_scope = set(patients)
        if self.rule.to_installments:
            found: list[Candidate] = []
            n = 0
            for plan in self.account.plans:
                plan_charges = self.room.plan_charges(plan)
                for installment in plan.installments:
                    n += 1
                    if not plan_charges:
                        continue
                    candidate = Candidate(plan_charges[0], n, plan, installment)
                    if not self.selected(candidate):
                        continue
                    if plan.patient not in in_scope:
                        self._out_of_scope(candidate.id, plan.patient, patients)
                        continue
                    found.append(candidate)
            return found
        clause = self.rule.targets
        if clause is not None:
            returned = call_clause(
                clause, "candidates", clause.impl.candidates, self.account, frozenset(patients)
            )
            charges: list[Charge] = []
            for charge in returned:
                if not isinstance(charge, Charge) or (
                    (known := self.room.charges.get(charge.id)) is not charge and known != charge
                ):
                    shown = getattr(charge, "id", charge)
                    raise refuse(
                        clause, f"returned {shown!r}, which is not a charge of this account"
                    )
                if charge not in charges:
                    charges.append(charge)
            position = {c.id: n for n, c in enumerate(self.account.charges)}
            positions: Sequence[int] = [position[c.id] for c in charges]
        else:
            charges = list(self.account.charges)
            positions = range(len(charges))  # each charge's place in the ledger
            self.in_ledger_order = True
        result: list[Candidate] = []
        chosen = self.request.charge_ids
        trace = self.trace
        rule_at = self.rule_at
        why: dict[str, str] = {}  # out-of-scope patient -> the end of the sentence
        for charge, at in zip(charges, positions, strict=True):
            charge_id = charge.id
            if chosen is not None and charge_id not in chosen:
                continue  # (a charge candidate is selected by its own id only)
            patient = charge.patient
            if patient not in in_scope:
                end = why.get(patient)
                if end is None:
                    end = why[patient] = out_of_scope_end(patient, self.rule.name, patients)
                trace.append((None, charge_id, False, 0, charge_id + end, rule_at))
                continue
            result.append(Candidate(charge, at))
        return result

    def _out_of_scope(self, target: str, patient: str, patients: Sequence[str]) -> None:
        self.note(
            target, target + out_of_scope_end(patient, self.rule.name, patients), self.rule_at
        )

    def view(self, candidate: Candidate) -> Target:
        """The candidate as it stands now (a charge's view is kept until it takes a split)."""
        if candidate.installment is None:
            charge = candidate.charge
            paid = self.made.by_charge.get(charge.id, 0)
            seen = candidate.seen
            if seen is not None and candidate.paid == paid:
                return seen
            # Room.charge_target's view, made with the cheaper constructor: this runs
            # for every candidate.
            room = self.room
            before = room.balances.get(charge.id)
            if before is None:
                before = room.balance(charge)
            balance, patient_balance, allocatable = charge_amounts(
                before, charge.insurance_estimate, self.payer, paid
            )
            seen = make_target(
                charge=charge,
                installment=None,
                plan=None,
                balance=balance,
                patient_balance=patient_balance,
                allocatable=allocatable,
                age=(self.request.run_date - charge.date).days,
                position=candidate.position,
            )
            candidate.seen, candidate.paid = seen, paid
            return seen
        return self.room.target(
            candidate.charge,
            self.payer,
            candidate.position,
            self.request.run_date,
            candidate.plan,
            candidate.installment,
        )

    def order(self, candidates: list[Candidate], views: list[Target]) -> list[Candidate]:
        """The candidates in the rule's order; ``views`` are their targets, in the same order."""
        orders = self.rule.orders
        payment = self.request.payment
        if len(orders) <= 1 and not (
            payment is not None and not self.rule.pooled and self.rule.preferences
        ):
            # No preference applies and at most one order: keys are (order key, position).
            column = (
                call_each(orders[0], "sort_key", orders[0].impl.sort_key, views)
                if orders
                else [_oldest_first(target) for target in views]
            )
            if self.in_ledger_order and all(type(k) is int for k in column):
                # Whole-number keys (dates as ordinals, amounts) of candidates already in
                # ledger order: a stable sort on the key alone is the order by (key,
                # position), and whole numbers always compare.
                return [candidates[n] for n in sorted(range(len(column)), key=column.__getitem__)]
            keys = zip(column, [c.position for c in candidates], strict=True)
            fast = [(key, n, c) for n, (key, c) in enumerate(zip(keys, candidates, strict=True))]
            return self._sorted(fast)

        def key(candidate: Candidate, target: Target) -> tuple[Any, ...]:
            parts: list[Any] = []
            if payment is not None and not self.rule.pooled:
                for pref in self.rule.preferences:
                    liked = call_clause(pref, "prefers", pref.impl.prefers, payment, target)
                    parts.append(0 if liked else 1)
            if orders:
                for order in orders:
                    parts.append(call_clause(order, "sort_key", order.impl.sort_key, target))
            else:
                parts.append(OldestFirst().sort_key(target))
            parts.append(candidate.position)
            return tuple(parts)

        keyed = [(key(c, v), n, c) for n, (c, v) in enumerate(zip(candidates, views, strict=True))]
        return self._sorted(keyed)

    def _sorted(self, keyed: list[tuple[Any, int, Candidate]]) -> list[Candidate]:
        """The candidates of ``keyed`` (key, index, candidate) by key, then index; sort keys
        that cannot be compared are the rule's first order's fault (else its source's)."""
        try:
            keyed.sort(key=lambda entry: entry[:2])
        except TypeError as exc:
            orders = self.rule.orders
            clause = orders[0] if orders else self.rule.source
            raise refuse(clause, f"gave sort keys that cannot be compared ({exc})") from exc
        return [c for _, _, c in keyed]

    def target_check(self, candidate: Candidate, target: Target) -> tuple[str, str | None] | None:
        """Why the target (the candidate's view) is skipped before any credit is looked at."""
        charge = candidate.charge
        if (
            candidate.installment is None
            and charge.kind in self.request.opt_in_kinds
            and charge.kind not in self.admitted_kinds
        ):
            return kind_not_admitted(charge), self.rule_at
        payment = self.request.payment
        for flt, skip_reason, where in self.filters:
            reason = call_clause(flt, "skip_reason", skip_reason, target, payment)
            if reason is not None:
                return str(reason), where
        if self.source_skips:
            source = self.rule.source
            reason = call_clause(
                source, "skip_reason", source.impl.skip_reason, target, self.source_request
            )
            if reason is not None:
                return str(reason), str(source.location)
        if target.allocatable <= 0:
            return unpaid_reason(target, self.room, self.payer), self.rule_at
        return None

    def distribution(self, eligible: list[Candidate], credit: Cents) -> dict[str, Cents] | None:
        clause = self.rule.distribution
        if clause is None:
            return None
        views = [self.view(c) for c in eligible]
        proposed = call_clause(clause, "propose", clause.impl.propose, credit, views)
        by_id = {v.id: v for v in views}
        wanted: dict[str, Cents] = {}
        total = 0
        for item in proposed:
            try:
                target_id, amount = item
            except (TypeError, ValueError):
                raise refuse(
                    clause, f"proposed {item!r}, which is not a (target, amount) pair"
                ) from None
            if target_id not in by_id:
                raise refuse(
                    clause, f"proposed a split to {target_id!r}, which is not a target here"
                )
            if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
                raise refuse(
                    clause,
                    f"proposed {amount!r} for {target_id}: a split must be a positive amount",
                )
            if target_id in wanted:
                raise refuse(clause, f"proposed {target_id} twice")
            if amount > by_id[target_id].allocatable:
                raise refuse(
                    clause,
                    f"proposed {format_cents(amount)} for {target_id}, more than the "
                    f"{format_cents(by_id[target_id].allocatable)} it allows",
                )
            total += amount
            wanted[target_id] = amount
        if total > credit:
            raise refuse(
                clause,
                f"proposed {format_cents(total)} in all, more than the "
                f"{format_cents(credit)} of credit there is",
            )
        return wanted
