"""Where a rule run's credit comes from, and whether it may pay a target.

The source clause names the credit (the payment, or a pool of credit already
posted) and :meth:`CreditSteps.credit_of` says how much each source has to give;
for a pool, scope clauses say whose credit may pay a patient's charge, and
preferences which credit pays a target first. Split guards then say whether a
source may pay a target (:meth:`CreditSteps.check_split`), or, when none may,
why (:meth:`CreditSteps.barred`). These are steps 1, 3 and 4 of
``docs/semantics.md`` on the credit's side; :mod:`paysplit.rule_targets` is the
targets' side, :mod:`paysplit.rule_run` runs the steps in turn.
"""

from __future__ import annotations

from typing import Any

from paysplit.clause_calls import call_clause, refuse
from paysplit.contract_objects import make_proposed
from paysplit.ledger import Payment
from paysplit.money import Cents
from paysplit.plans import PlanWarning
from paysplit.policy import Refuse, Target, Warn
from paysplit.rule_run_state import RunState
from paysplit.rules import CompiledClause

__all__ = ["CreditSteps"]


class CreditSteps(RunState):
    """The steps of a rule run on the credit's side (a :class:`~paysplit.rule_run.RuleRun`
    is one)."""

    def sources(self) -> list[Payment]:
        clause = self.rule.source
        returned = call_clause(clause, "credit", clause.impl.credit, self.source_request)
        known = {p.id: p for p in self.account.payments}
        sources: list[Payment] = []
        for payment in returned:
            if not isinstance(payment, Payment) or (
                (found := known.get(payment.id)) is not payment and found != payment
            ):
                shown = getattr(payment, "id", payment)
                raise refuse(clause, f"returned {shown!r}, which is not a payment of this account")
            if payment.void or payment.type != "payment":
                raise refuse(clause, f"returned {payment.id}, which is void or a refund")
            if payment not in sources:
                sources.append(payment)
        if self.rule.pooled and self.request.payment is not None:
            sources = [p for p in sources if p.id == self.request.payment.id]
        return sources

    def credit_of(self, payment: Payment) -> Cents:
        if self.rule.pooled:
            return self.figures.credit_due_to_patient(payment)
        return self.figures.unallocated(payment)

    def credit_patients(self, patient: str) -> set[str]:
        wanted = {patient}
        for scope in self.rule.scopes:
            added = call_clause(
                scope, "credit_patients", scope.impl.credit_patients, self.account, patient
            )
            wanted.update(added)
        return wanted

    def source_order(self, target: Target, sources: list[Payment]) -> list[Payment]:
        if not self.rule.pooled or not self.rule.preferences:
            return sources
        keyed = []
        for n, payment in enumerate(sources):
            parts = [
                0 if call_clause(p, "prefers", p.impl.prefers, payment, target) else 1
                for p in self.rule.preferences
            ]
            keyed.append((parts, n, payment))
        keyed.sort(key=lambda entry: (entry[0], entry[1]))
        return [payment for _, _, payment in keyed]

    def preferred_by(self, payment: Payment, target: Target) -> CompiledClause[Any] | None:
        for pref in self.rule.preferences:
            if call_clause(pref, "prefers", pref.impl.prefers, payment, target):
                return pref
        return None

    def check_split(
        self,
        payment: Payment,
        target: Target,
        amount: Cents,
        credit_left: Cents,
        *,
        probe: bool = False,
    ) -> tuple[str, str] | None:
        """Run every split guard; a refusal's (reason, clause), or None (warnings noted).

        A probe asks whether the credit could pay the target at all, were there
        enough of it; its warnings are not noted, since no split is made.
        """
        if not self.split_guards:
            return None
        proposed = make_proposed(
            payment=payment,
            target=target,
            amount=amount,
            credit_left=credit_left,
            manual=False,
            run_date=self.request.run_date,
        )
        warnings: list[PlanWarning] = []
        for guard in self.split_guards:
            verdict = call_clause(guard, "check_split", guard.impl.check_split, proposed)
            if verdict is None:
                continue
            if isinstance(verdict, Refuse):
                return verdict.reason, str(guard.location)
            if isinstance(verdict, Warn):
                warnings.append(PlanWarning(message=verdict.message, clause=str(guard.location)))
                continue
            raise refuse(
                guard, f"returned {verdict!r} from check_split (expected Refuse, Warn or None)"
            )
        if not probe:
            for warning in warnings:
                self.warn(warning.message, warning.clause)
        return None

    def barred(
        self, target: Target, sources: list[Payment], own: set[str] | None
    ) -> tuple[str, str, str] | None:
        """(reason, clause, source) when no source may pay the target even with credit to
        spare (a guard or the scope forbids every one), or None when some source could.

        A target that no credit may pay is not owed by it: an outcome guard that
        keeps an allocation only when the credit pays everything owed must not
        count it (003: Dr 1's payment pays all of Dr 1's invoices, whatever Dr 2
        is owed).
        """
        first: tuple[str, str, str] | None = None
        for source in self.source_order(target, sources):
            if own is not None and source.patient not in own:
                continue
            need = target.allocatable
            refusal = self.check_split(source, target, need, need, probe=True)
            if refusal is None:
                return None
            first = first or (refusal[0], refusal[1], source.id)
        return first
