"""A rule run's request, and the state the run keeps while it decides.

:class:`RuleRequest` is what a caller asks of :func:`~paysplit.allocation.allocate`:
a compiled rule, an account and the operation's settings. :class:`RunState` is
what one run keeps: the request, what it looked up about the rule
(:mod:`paysplit.prepared_rules`), the splits made so far
(:mod:`paysplit.plan_splits`) and what each target may still take
(:mod:`paysplit.target_views`), and the trace and warnings it writes. It also
makes the plan of what was decided. The steps of a run are
:mod:`paysplit.rule_targets`, :mod:`paysplit.rule_credit` and
:mod:`paysplit.rule_run`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from paysplit.figures import AccountFigures
from paysplit.ledger import Account, Charge, Payment
from paysplit.money import Cents
from paysplit.plan_splits import PlanIds, Splits, added_by, unallocated
from paysplit.plans import BlockedReason, PlanDraft, PlannedCredit, PlanWarning, TraceRow
from paysplit.policy import Guard, SourceRequest
from paysplit.prepared_rules import prepared_rule
from paysplit.rules import CompiledClause, CompiledRule
from paysplit.target_views import Room

__all__ = ["RuleRequest", "RunState"]


@dataclass(frozen=True)
class RuleRequest:
    """Run ``rule`` on one account: for ``payment``, or (a pooled rule) for the account."""

    account: Account
    rule: CompiledRule
    run_date: dt.date
    operation: str = "apply"
    payment: Payment | None = None
    """The payment a ``from payment`` rule is applied to; for a pooled rule, it limits
    the pool to that one payment."""
    charge: Charge | None = None
    """For an ``on charge added`` rule: the charge just posted."""
    charge_ids: tuple[str, ...] | None = None
    """``--charges``: only these charges (or installments, or a plan's charges) are targets."""
    settings_guards: tuple[CompiledClause[Guard], ...] = ()
    opt_in_kinds: frozenset[str] = frozenset()
    default_unearned_type: str = "prepayment"
    new_payments: frozenset[str] = frozenset()
    """Payments posted by this very operation: their splits are not income transfers."""
    reserved_ids: frozenset[str] = frozenset()
    """Split ids in use anywhere in the ledger (a new id never reuses one)."""
    figures: AccountFigures | None = None
    """``AccountFigures.of(account)``, when the caller has it already (else it is computed)."""


class RunState:
    """The state of one rule run: what it was asked, what it looked up about the rule, and
    what it has written so far. A :class:`~paysplit.rule_run.RuleRun` is its only kind,
    and :func:`~paysplit.allocation.allocate` the only way in."""

    def __init__(self, request: RuleRequest) -> None:
        self.request = request
        self.rule = request.rule
        self.account = request.account
        self.figures = (
            AccountFigures.of(request.account) if request.figures is None else request.figures
        )
        prepared = prepared_rule(request.rule, request.settings_guards)
        self.guards = prepared.guards
        self.made = Splits(
            ids=PlanIds.of(request.account, request.reserved_ids),
            new_payments=request.new_payments,
            default_unearned_type=request.default_unearned_type,
            rule=request.rule.name,
        )
        self.room = Room(
            account=request.account,
            figures=self.figures,
            made=self.made,
            charges=self.figures.charges,  # {charge id: charge} of the account, in order
        )
        self.trace: list[TraceRow] = []
        self.warnings: list[PlanWarning] = []
        self.rule_at = prepared.rule_at
        self.split_guards = prepared.split_guards
        self.operation_guards = prepared.operation_guards
        self.outcome_guards = prepared.outcome_guards
        self.filters = prepared.filters
        self.source_skips = prepared.source_skips
        self.admitted_kinds = prepared.admitted_kinds
        self.in_ledger_order = False
        """True when the candidates are listed by ledger position (their tie-break)."""
        self.payer = "patient"
        if request.payment is not None and not request.rule.pooled:
            self.payer = request.payment.payer
        self.source_request = SourceRequest(
            account=request.account,
            figures=self.figures,
            run_date=request.run_date,
            payment=request.payment,
            charge=request.charge,
            default_unearned_type=request.default_unearned_type,
        )

    # -- small helpers ---------------------------------------------------------
    def note(
        self,
        target: str,
        reason: str,
        clause: str | None,
        *,
        source: str | None = None,
        used: bool = False,
        amount: Cents = 0,
    ) -> None:
        self.trace.append((source, target, used, amount, reason, clause))

    def warn(self, message: str, clause: str | None) -> None:
        warning = PlanWarning(message=message, clause=clause)
        if warning not in self.warnings:
            self.warnings.append(warning)

    def plan(
        self,
        *,
        blocked: BlockedReason | None = None,
        credits: Sequence[PlannedCredit] = (),
        touched: Iterable[str] = (),
    ) -> PlanDraft:
        splits = [] if blocked is not None else self.made.splits
        touched_ids = [*touched, *(s[1] for s in splits)]
        return PlanDraft(
            operation=self.request.operation,
            rule=self.rule.name,
            blocked=blocked,
            splits=splits,
            credits=tuple(credits),
            unallocated=unallocated(self.figures, touched_ids, added_by(splits)),
            warnings=tuple(self.warnings),
            trace=self.trace,
            date=self.request.run_date,
        )
