"""The allocation core: an account, a compiled rule and a request in; a plan out.

This module knows no practice policy by name. It runs the clause objects a
rule compiled to (:mod:`paysplit.policy`) in one fixed sequence, the one
``docs/semantics.md`` describes:

1. the source clause names the credit (the payment, or a pool of credit
   already posted); scope clauses widen whose charges it may pay (and, for a
   pool, whose credit may pay a charge); opt-in kinds stay out unless a scope
   admits them;
2. operation guards may block the whole operation before anything is decided;
3. targets are ordered by the rule's orders (ties by ledger position), with
   preferred targets first (a payment rule) or preferred credit first for each
   target (a pool);
4. each target is checked (kind, filters, the source's own limit, what it
   still allows) and takes min(credit left, allocatable), or what a
   distribution clause proposes; split guards may skip it or add a warning;
5. outcome guards may withhold the whole result; a leftover handler may
   annotate credit left over.

Every candidate considered leaves a trace entry that says whether it was
used, how much it took, and which clause decided. Plugin code is called only
through :func:`call_clause` (:mod:`paysplit.clause_calls`; or, for many
items of one clause at once, :func:`~paysplit.clause_calls.call_each`, with
the same error), and what it returns is checked, so a plugin that raises or
proposes an impossible split ends in a :class:`PluginError` naming it, before
anything is written.

This is the hot path of ``paysplit batch`` (``docs/performance.md``): inside a
run, splits and trace entries are tuples, and the plan is a
:class:`~paysplit.plans.PlanDraft` made into the pydantic :class:`Plan` once,
at the edge. A clause method left at its base class's neutral default is not
called, nor is a guard's ``check_split`` that declares it speaks only beyond
limits no automatic split reaches (``Guard.speaks_only_beyond_limits``).

:func:`allocate` runs a rule (:func:`allocate_draft`: the same, as a draft);
:func:`allocate_by_hand` makes a manual allocation
(:mod:`paysplit.manual_allocation`). A rule run is made of these modules:

- :mod:`paysplit.rule_run_state`: the :class:`RuleRequest`, the state a run
  keeps (trace, warnings, splits so far), and the plan it makes of them;
- :mod:`paysplit.prepared_rules`: what the core looks up about a rule once,
  before any account (which guards can speak, the filters, admitted kinds);
- :mod:`paysplit.rule_targets`: steps 1, 3 and 4 on the targets' side: the
  candidates in scope, their views, their order, why one is skipped, and a
  distribution clause's proposal;
- :mod:`paysplit.rule_credit`: the same steps on the credit's side: the
  sources and their credit, whose credit may pay a charge, the order credit
  pays a target in, and the split guards;
- :mod:`paysplit.rule_run`: the run itself (the operation guards, the loop
  over the targets, the outcome guards, the leftover) and why a run made no
  split;
- :mod:`paysplit.contract_objects`: the fast makers of the objects a run
  hands to clauses, its ``Target`` views and proposed splits.

The splits both ways in record live in :mod:`paysplit.plan_splits`, the
target views and what each target may still take in
:mod:`paysplit.target_views`, and the sentences a run writes in
:mod:`paysplit.rule_reasons`. Every public name of the core is importable
from here. All are pure: same input, same plan.
"""

from __future__ import annotations

from paysplit.clause_calls import call_clause
from paysplit.manual_allocation import ManualRequest, TargetKind, allocate_by_hand
from paysplit.plan_splits import PlanIds, unallocated_after
from paysplit.plans import Plan, PlanDraft
from paysplit.rule_run import RuleRun
from paysplit.rule_run_state import RuleRequest

__all__ = [
    "ManualRequest",
    "PlanIds",
    "RuleRequest",
    "TargetKind",
    "allocate",
    "allocate_by_hand",
    "allocate_draft",
    "call_clause",
    "unallocated_after",
]


def allocate(request: RuleRequest) -> Plan:
    """Run one compiled rule on one account and say what it would do, as a plan."""
    return RuleRun(request).run().to_plan()


def allocate_draft(request: RuleRequest) -> PlanDraft:
    """:func:`allocate`, with the plan as rows (:class:`PlanDraft`): for callers that
    only write it or apply it (``paysplit batch``), the pydantic model is never made."""
    return RuleRun(request).run()
