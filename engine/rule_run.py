"""A rule run, start to end: the fixed sequence of ``docs/semantics.md`` in one loop.

:class:`RuleRun` is a rule run's state (:mod:`paysplit.rule_run_state`) with
its steps on the targets' side (:mod:`paysplit.rule_targets`) and on the
credit's side (:mod:`paysplit.rule_credit`); :meth:`RuleRun.run` takes them in
turn: the operation guards, each target in order taking what the credit
allows, the outcome guards, then a leftover handler's note on credit left over.
A run that made no split says why (:meth:`RuleRun.explain_nothing`).
:func:`~paysplit.allocation.allocate` is the only way in.
"""

from __future__ import annotations

from collections.abc import Sequence

from paysplit.clause_calls import call_clause, refuse
from paysplit.ledger import Charge, CreditNote, Payment
from paysplit.money import Cents
from paysplit.plans import BlockedReason, PlanDraft, PlannedCredit
from paysplit.policy import Operation, Outcome
from paysplit.rule_credit import CreditSteps
from paysplit.rule_reasons import (
    leftover_credit,
    nothing_left,
    nothing_to_do,
    nothing_unallocated,
    paid,
)
from paysplit.rule_targets import Candidate, TargetSteps

__all__ = ["RuleRun"]


class RuleRun(TargetSteps, CreditSteps):
    """One run of a rule on one account: :meth:`run` says what it would do, as a plan.

    Its two sides share the run's state and never call each other, so each reads on
    its own; only the run uses both."""

    def operation_view(self, patients: Sequence[str], candidates: list[Candidate]) -> Operation:
        charges: dict[str, Charge] = {}
        for candidate in candidates:
            charges.setdefault(candidate.charge.id, candidate.charge)
        return Operation(
            name=self.request.operation,
            account=self.account,
            figures=self.figures,
            run_date=self.request.run_date,
            payment=self.request.payment,
            patients=frozenset(patients),
            charges=tuple(charges.values()),
            manual=False,
        )

    # -- the run ---------------------------------------------------------------
    def run(self) -> PlanDraft:
        request = self.request
        rule = self.rule
        payment = request.payment
        if not rule.pooled and payment is None:
            self.warn(
                f"rule {rule.name} pays from a payment, and this operation has none: nothing to do",
                self.rule_at,
            )
            return self.plan()
        sources = self.sources()
        credit = {p.id: self.credit_of(p) for p in sources}
        sources = [p for p in sources if credit[p.id] > 0] if rule.pooled else sources
        touched = [payment.id] if payment is not None else []

        if rule.pooled:
            patients = [p.id for p in self.account.patients]
        else:
            assert payment is not None
            patients = self.scope_patients(payment.patient)
        candidates = self.candidates(patients)

        operation = self.operation_view(patients, candidates) if self.operation_guards else None
        for guard in self.operation_guards:
            reason = call_clause(guard, "check_operation", guard.impl.check_operation, operation)
            if reason is not None:
                if not isinstance(reason, str):
                    raise refuse(guard, f"returned {reason!r} from check_operation")
                self.trace.clear()
                blocked = BlockedReason(
                    reason=reason, clause=str(guard.location), plugin=guard.plugin
                )
                return self.plan(blocked=blocked, touched=touched)

        # Nothing is allocated until every target is checked: one view each serves both.
        views = [self.view(c) for c in candidates]
        view_of = {id(c): v for c, v in zip(candidates, views, strict=True)}
        ordered = self.order(candidates, views)
        eligible: list[Candidate] = []
        trace = self.trace
        target_check = self.target_check
        for candidate in ordered:
            skipped = target_check(candidate, view_of[id(candidate)])
            if skipped is not None:
                trace.append((None, candidate.id, False, 0, skipped[0], skipped[1]))
            else:
                eligible.append(candidate)

        credit_before = sum(credit.get(p.id, 0) for p in sources)
        left = {p.id: credit.get(p.id, 0) for p in sources}
        wanted = self.distribution(eligible, credit_before)
        made_for: list[tuple[str, str, Cents]] = []
        unpaid: list[Candidate] = []
        used_entries: list[int] = []
        order_at = str(rule.orders[0].location) if rule.orders else self.rule_at

        for candidate in eligible:
            target = self.view(candidate)
            need = target.allocatable
            if wanted is not None:
                if candidate.id not in wanted:
                    dist = rule.distribution
                    assert dist is not None
                    self.note(
                        candidate.id,
                        f"{dist.text} gave {candidate.id} nothing",
                        str(dist.location),
                    )
                    unpaid.append(candidate)
                    continue
                need = min(need, wanted[candidate.id])
            refused = False
            considered = False
            own = self.credit_patients(candidate.charge.patient) if rule.pooled else None
            for source in self.source_order(target, sources):
                if need <= 0:
                    break
                if left[source.id] <= 0:
                    continue
                considered = True
                if own is not None and source.patient not in own:
                    self.note(
                        candidate.id,
                        f"credit of {source.patient} ({source.id}) may not pay "
                        f"{candidate.charge.patient}'s {candidate.id}: no scope clause "
                        f"lets {source.patient}'s credit pay it",
                        self.rule_at,
                        source=source.id,
                    )
                    continue
                target = self.view(candidate)
                amount = min(need, left[source.id], target.allocatable)
                verdict = self.check_split(source, target, amount, left[source.id])
                if verdict is not None:
                    refused = True
                    self.note(candidate.id, verdict[0], verdict[1], source=source.id)
                    continue
                self.room.put(source, target, amount, self.payer)
                left[source.id] -= amount
                need -= amount
                made_for.append((source.id, candidate.id, amount))
                preferred = self.preferred_by(source, target) if rule.preferences else None
                reason = paid(amount, target.allocatable)
                clause_at = order_at
                if preferred is not None:
                    reason += f"; {preferred.text}: matching credit and charges come first"
                    clause_at = str(preferred.location)
                elif wanted is not None and rule.distribution is not None:
                    clause_at = str(rule.distribution.location)
                used_entries.append(len(self.trace))
                self.note(
                    candidate.id, reason, clause_at, source=source.id, used=True, amount=amount
                )
            if not considered and (bar := self.barred(target, sources, own)) is not None:
                refused = True
                self.note(candidate.id, bar[0], bar[1], source=bar[2])
            elif not considered:
                shown = payment.id if payment is not None and not rule.pooled else None
                self.note(
                    candidate.id,
                    nothing_left(shown, candidate.id)
                    if shown
                    else f"no credit left to pay {candidate.id}",
                    str(rule.source.location),
                    source=shown,
                )
            if need > 0 and not refused:
                unpaid.append(candidate)

        # outcome guards: keep what was decided, or withhold it all
        if self.outcome_guards:
            outcome = Outcome(
                payment=payment,
                credit_before=credit_before,
                credit_left=sum(left.values()),
                splits=tuple(made_for),
                unpaid=tuple(
                    (view, view.allocatable)
                    for view in (self.view(c) for c in unpaid)
                    if view.allocatable > 0
                ),
            )
        for guard in self.outcome_guards:
            reason = call_clause(guard, "check_outcome", guard.impl.check_outcome, outcome)
            if reason is None:
                continue
            if not isinstance(reason, str):
                raise refuse(guard, f"returned {reason!r} from check_outcome")
            withheld = f"withheld: {reason}"
            at = str(guard.location)
            for index in used_entries:
                source_id, target_id, _, _, _, _ = self.trace[index]
                self.trace[index] = (source_id, target_id, False, 0, withheld, at)
            self.warn(reason, at)
            self.made.splits.clear()
            return self.plan(touched=touched)

        credits = self.leftover(sources, left)
        if not self.made.splits:
            self.explain_nothing(payment, credit_before, candidates, eligible)
        return self.plan(credits=credits, touched=[*touched, *(c.payment for c in credits)])

    def leftover(self, sources: list[Payment], left: dict[str, Cents]) -> list[PlannedCredit]:
        clause = self.rule.leftover
        if clause is None:
            return []
        drawn = {s[1] for s in self.made.splits}
        credits: list[PlannedCredit] = []
        for source in sources:
            amount = left.get(source.id, 0)
            if amount <= 0 or (self.rule.pooled and source.id not in drawn):
                continue
            note = call_clause(clause, "leftover", clause.impl.leftover, source, amount)
            if note is None:
                continue
            if not isinstance(note, CreditNote):
                raise refuse(clause, f"returned {note!r} from leftover (expected a CreditNote)")
            if note == source.credit:
                continue
            credits.append(leftover_credit(source.id, amount, note))
        return credits

    def explain_nothing(
        self,
        payment: Payment | None,
        credit_before: Cents,
        candidates: list[Candidate],
        eligible: list[Candidate],
    ) -> None:
        rule = self.rule
        if credit_before <= 0:
            if payment is not None and not rule.pooled:
                message = nothing_unallocated(payment.id)
            else:
                message = (
                    f"account {self.account.id} has no unallocated credit that rule "
                    f"{rule.name} may draw on: nothing to do"
                )
            self.warn(message, str(rule.source.location))
        else:
            self.warn(nothing_to_do(rule.name, bool(candidates), bool(eligible)), self.rule_at)
