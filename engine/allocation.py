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
through :func:`call_clause` (:mod:`paysplit.clause_calls`; or, for many items
of one clause at once, :func:`_call_each`, with the same error), and what it
returns is checked, so a plugin that raises or proposes an impossible split
ends in a :class:`PluginError` naming it, before anything is written.

This is the hot path of ``paysplit batch`` (``docs/performance.md``): inside a
run, splits and trace entries are tuples, and the plan is a
:class:`~paysplit.plans.PlanDraft` made into the pydantic :class:`Plan` once,
at the edge. A clause method left at its base class's neutral default is not
called, nor is a guard's ``check_split`` that declares it speaks only beyond
limits no automatic split reaches (``Guard.speaks_only_beyond_limits``).

:func:`allocate` runs a rule (:func:`allocate_draft`: the same, as a draft);
this module owns that run. :func:`allocate_by_hand` makes a manual allocation
(:mod:`paysplit.manual_allocation`). The splits both record live in
:mod:`paysplit.plan_splits`, the target views and what each target may still
take in :mod:`paysplit.target_views`. Every public name of the core is
importable from here. All are pure: same input, same plan.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from paysplit.clause_calls import call_clause, call_each, refuse
from paysplit.core_clauses import OldestFirst
from paysplit.figures import AccountFigures
from paysplit.ledger import Account, Charge, CreditNote, Installment, Payment, PaymentPlan
from paysplit.manual_allocation import ManualRequest, TargetKind, allocate_by_hand
from paysplit.money import Cents, format_cents
from paysplit.plan_splits import PlanIds, Splits, added_by, unallocated, unallocated_after
from paysplit.plans import (
    BlockedReason,
    Plan,
    PlanDraft,
    PlannedCredit,
    PlanWarning,
    TraceRow,
)
from paysplit.policy import (
    Clause,
    Guard,
    Operation,
    Outcome,
    ProposedSplit,
    Refuse,
    Source,
    SourceRequest,
    Target,
    Warn,
)
from paysplit.rule_reasons import (
    kind_not_admitted,
    leftover_credit,
    nothing_left,
    nothing_to_do,
    nothing_unallocated,
    out_of_scope_end,
    paid,
)
from paysplit.rules import CompiledClause, CompiledRule
from paysplit.target_views import Room, charge_amounts, unpaid_reason

_oldest_first = OldestFirst().sort_key
"""The order of a rule that names none."""


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
_target = _target_maker()
_proposed = _proposed_maker()

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


# --- requests ----------------------------------------------------------------
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


# --- running a rule ----------------------------------------------------------
class _Candidate:
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


def allocate(request: RuleRequest) -> Plan:
    """Run one compiled rule on one account and say what it would do, as a plan."""
    return _RuleRun(request).run().to_plan()


def allocate_draft(request: RuleRequest) -> PlanDraft:
    """:func:`allocate`, with the plan as rows (:class:`PlanDraft`): for callers that
    only write it or apply it (``paysplit batch``), the pydantic model is never made."""
    return _RuleRun(request).run()


def _overrides(clause: CompiledClause[Any], name: str, base: type[Clause]) -> bool:
    """False when the clause's ``name`` method is the base class's neutral default
    (which decides nothing: calling it cannot change the plan)."""
    method = getattr(clause.impl, name, None)
    return getattr(method, "__func__", None) is not getattr(base, name)


class _Prepared:
    """What a run of one rule (with the settings' guards) looks up before any account:
    made once per rule and reused, since compiled rules do not change."""

    __slots__ = (
        "admitted_kinds",
        "filters",
        "guards",
        "operation_guards",
        "outcome_guards",
        "rule",
        "rule_at",
        "settings_guards",
        "source_skips",
        "split_guards",
    )

    def __init__(
        self, rule: CompiledRule, settings_guards: tuple[CompiledClause[Guard], ...]
    ) -> None:
        self.rule = rule
        self.settings_guards = settings_guards
        guards: tuple[CompiledClause[Guard], ...] = (*settings_guards, *rule.guards)
        self.guards = guards
        self.rule_at = str(rule.location)
        # A guard method that is the neutral default decides nothing: it is not called.
        # Nor is ``check_split`` of a guard that speaks only beyond the limits no
        # automatic split reaches (``Guard.speaks_only_beyond_limits``).
        self.split_guards = tuple(
            g
            for g in guards
            if _overrides(g, "check_split", Guard)
            and getattr(g.impl, "speaks_only_beyond_limits", False) is not True
        )
        self.operation_guards = tuple(g for g in guards if _overrides(g, "check_operation", Guard))
        self.outcome_guards = tuple(g for g in guards if _overrides(g, "check_outcome", Guard))
        self.filters = tuple((f, f.impl.skip_reason, str(f.location)) for f in rule.filters)
        self.source_skips = _overrides(rule.source, "skip_reason", Source)
        admitted: set[str] = set()
        for scope in rule.scopes:
            admitted |= set(scope.impl.admitted_kinds)
        self.admitted_kinds = frozenset(admitted)


_PREPARED: dict[tuple[int, int], _Prepared] = {}


def _prepared(rule: CompiledRule, settings_guards: tuple[CompiledClause[Guard], ...]) -> _Prepared:
    key = (id(rule), id(settings_guards))
    found = _PREPARED.get(key)
    if found is None or found.rule is not rule or found.settings_guards is not settings_guards:
        if len(_PREPARED) >= 256:
            _PREPARED.clear()
        found = _PREPARED[key] = _Prepared(rule, settings_guards)
    return found


class _RuleRun:
    """The state of one rule run; :func:`allocate` is its only way in."""

    def __init__(self, request: RuleRequest) -> None:
        self.request = request
        self.rule = request.rule
        self.account = request.account
        self.figures = (
            AccountFigures.of(request.account) if request.figures is None else request.figures
        )
        prepared = _prepared(request.rule, request.settings_guards)
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

    # -- the steps -------------------------------------------------------------
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

    def credit_patients(self, patient: str) -> set[str]:
        wanted = {patient}
        for scope in self.rule.scopes:
            added = call_clause(
                scope, "credit_patients", scope.impl.credit_patients, self.account, patient
            )
            wanted.update(added)
        return wanted

    def selected(self, candidate: _Candidate) -> bool:
        chosen = self.request.charge_ids
        if chosen is None:
            return True
        if candidate.id in chosen or candidate.charge.id in chosen:
            return True
        return candidate.plan is not None and any(c in chosen for c in candidate.plan.charges)

    def candidates(self, patients: Sequence[str]) -> list[_Candidate]:
        """Charges (or installments) in scope; out-of-scope ones are traced and dropped."""
        in_scope = set(patients)
        if self.rule.to_installments:
            found: list[_Candidate] = []
            n = 0
            for plan in self.account.plans:
                plan_charges = self.room.plan_charges(plan)
                for installment in plan.installments:
                    n += 1
                    if not plan_charges:
                        continue
                    candidate = _Candidate(plan_charges[0], n, plan, installment)
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
        result: list[_Candidate] = []
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
            result.append(_Candidate(charge, at))
        return result

    def _out_of_scope(self, target: str, patient: str, patients: Sequence[str]) -> None:
        self.note(
            target, target + out_of_scope_end(patient, self.rule.name, patients), self.rule_at
        )

    def view(self, candidate: _Candidate) -> Target:
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
            seen = _target(
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

    def order(self, candidates: list[_Candidate], views: list[Target]) -> list[_Candidate]:
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
            try:
                fast.sort(key=lambda entry: entry[:2])
            except TypeError as exc:
                clause = orders[0] if orders else self.rule.source
                raise refuse(clause, f"gave sort keys that cannot be compared ({exc})") from exc
            return [c for _, _, c in fast]

        def key(candidate: _Candidate, target: Target) -> tuple[Any, ...]:
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
        try:
            keyed.sort(key=lambda entry: entry[:2])
        except TypeError as exc:
            clause = orders[0] if orders else self.rule.source
            raise refuse(clause, f"gave sort keys that cannot be compared ({exc})") from exc
        return [c for _, _, c in keyed]

    def target_check(self, candidate: _Candidate, target: Target) -> tuple[str, str | None] | None:
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
        proposed = _proposed(
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

    def distribution(self, eligible: list[_Candidate], credit: Cents) -> dict[str, Cents] | None:
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

    def operation_view(self, patients: Sequence[str], candidates: list[_Candidate]) -> Operation:
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
        eligible: list[_Candidate] = []
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
        unpaid: list[_Candidate] = []
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
        candidates: list[_Candidate],
        eligible: list[_Candidate],
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
