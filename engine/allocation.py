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
through :func:`call_clause`, and what it returns is checked, so a plugin that
raises or proposes an impossible split ends in a :class:`PluginError` naming
it, before anything is written.

:func:`allocate` runs a rule; :func:`allocate_by_hand` makes a manual
allocation. Both are pure: same input, same plan.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from paysplit.core_clauses import OldestFirst
from paysplit.errors import PaysplitError, PluginError, UsageError
from paysplit.figures import AccountFigures
from paysplit.ledger import Account, Charge, CreditNote, Installment, Payment, PaymentPlan
from paysplit.money import Cents, format_cents
from paysplit.plans import (
    BlockedReason,
    Plan,
    PlannedCredit,
    PlannedSplit,
    PlanWarning,
    TraceEntry,
    Transfer,
    TransferLeg,
)
from paysplit.policy import (
    Guard,
    Operation,
    Outcome,
    ProposedSplit,
    Refuse,
    SourceRequest,
    Target,
    Warn,
)
from paysplit.rules import CompiledClause, CompiledRule

T = TypeVar("T")

__all__ = [
    "ManualRequest",
    "PlanIds",
    "RuleRequest",
    "TargetKind",
    "allocate",
    "allocate_by_hand",
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


# --- calling plugin code -----------------------------------------------------
def call_clause(clause: CompiledClause[Any], what: str, fn: Callable[..., T], *args: Any) -> T:
    """Call a clause's method; any exception becomes a PluginError naming the plugin."""
    try:
        return fn(*args)
    except PaysplitError:
        raise
    except Exception as exc:
        raise PluginError(
            clause.plugin,
            f"clause {clause.text!r} ({clause.location}) failed in {what}: "
            f"{type(exc).__name__}: {exc}",
        ) from exc


def _refuse(clause: CompiledClause[Any], message: str) -> PluginError:
    return PluginError(
        clause.plugin, f"clause {clause.text!r} ({clause.location}) {message}; nothing was written"
    )


# --- ids, transfers, figures shared by every operation -----------------------
@dataclass
class PlanIds:
    """Deterministic ids for new splits (``PAY1-3``) and transfers (``T-PAY1-3``)."""

    account: Account
    reserved: set[str]
    counters: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, account: Account, reserved: Iterable[str] = ()) -> PlanIds:
        taken = {s.id for s in account.splits} | set(reserved)
        return cls(account=account, reserved=taken)

    def next_split(self, payment_id: str) -> str:
        if payment_id not in self.counters:
            self.counters[payment_id] = sum(
                1 for s in self.account.splits if s.payment == payment_id
            )
        while True:
            self.counters[payment_id] += 1
            candidate = f"{payment_id}-{self.counters[payment_id]}"
            if candidate not in self.reserved:
                self.reserved.add(candidate)
                return candidate


@dataclass
class _Splits:
    """The splits and transfers a plan is building, with what each charge has taken."""

    ids: PlanIds
    new_payments: frozenset[str]
    default_unearned_type: str
    rule: str | None
    splits: list[PlannedSplit] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    by_charge: dict[str, Cents] = field(default_factory=dict)
    by_installment: dict[str, Cents] = field(default_factory=dict)
    by_payment: dict[str, Cents] = field(default_factory=dict)

    def add(
        self, payment: Payment, charge: str, installment: str | None, amount: Cents
    ) -> PlannedSplit:
        split_id = self.ids.next_split(payment.id)
        transfer_id = None if payment.id in self.new_payments else f"T-{split_id}"
        split = PlannedSplit(
            id=split_id,
            payment=payment.id,
            charge=charge,
            installment=installment,
            amount=amount,
            transfer=transfer_id,
            rule=self.rule,
        )
        self.splits.append(split)
        if transfer_id is not None:
            self.transfers.append(
                Transfer(
                    id=transfer_id,
                    from_payment=payment.id,
                    unearned_type=payment.unearned_type or self.default_unearned_type,
                    legs=(
                        TransferLeg(target=None, amount=-amount),
                        TransferLeg(target=installment or charge, amount=amount),
                    ),
                )
            )
        self.by_charge[charge] = self.by_charge.get(charge, 0) + amount
        if installment is not None:
            self.by_installment[installment] = self.by_installment.get(installment, 0) + amount
        self.by_payment[payment.id] = self.by_payment.get(payment.id, 0) + amount
        return split


def unallocated_after(
    figures: AccountFigures, payment_ids: Iterable[str], splits: Sequence[PlannedSplit]
) -> dict[str, Cents]:
    """Each payment's unallocated amount once ``splits`` are added, in ledger order."""
    wanted = set(payment_ids)
    added: dict[str, Cents] = {}
    for split in splits:
        added[split.payment] = added.get(split.payment, 0) + split.amount
    return {
        payment.id: figures.unallocated(payment) - added.get(payment.id, 0)
        for payment in figures.account.payments
        if payment.id in wanted
    }


# --- targets -----------------------------------------------------------------
@dataclass
class _Room:
    """What each charge and installment may still take, given the plan so far."""

    account: Account
    figures: AccountFigures
    made: _Splits
    charges: dict[str, Charge]

    def charge_room(self, charge: Charge, payer: str) -> Cents:
        return max(
            0, self.figures.allocatable(charge, payer) - self.made.by_charge.get(charge.id, 0)
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
        paid = self.made.by_charge.get(charge.id, 0)
        balance = self.figures.balance(charge) - paid
        return Target(
            charge=charge,
            installment=None,
            plan=None,
            balance=balance,
            patient_balance=max(0, balance - charge.insurance_estimate),
            allocatable=self.charge_room(charge, payer),
            age=(run_date - charge.date).days,
            position=position,
        )

    def put(self, payment: Payment, target: Target, amount: Cents, payer: str) -> list[str]:
        """Make the splits that move ``amount`` of ``payment`` to ``target``; their ids."""
        if target.installment is None or target.plan is None:
            return [self.made.add(payment, target.charge.id, None, amount).id]
        made: list[str] = []
        left = amount
        plan_charges = self.plan_charges(target.plan) or [target.charge]
        for charge in plan_charges:
            if left <= 0:
                break
            take = min(left, self.charge_room(charge, payer))
            if take > 0:
                made.append(self.made.add(payment, charge.id, target.installment.id, take).id)
                left -= take
        if left > 0:  # only a manual over-allocation a setting allowed gets here
            last = plan_charges[-1]
            made.append(self.made.add(payment, last.id, target.installment.id, left).id)
        return made


def _unpaid_reason(target: Target, room: _Room, payer: str) -> str:
    """Why a target whose allocatable amount is 0 is never a target (002)."""
    if target.installment is not None:
        if room.installment_left(target.installment) <= 0:
            return f"installment {target.installment.id} is paid in full"
        plan_id = target.plan.id if target.plan is not None else "?"
        return f"the charges of plan {plan_id} are paid in full"
    charge = target.charge
    balance = room.figures.balance(charge) - room.made.by_charge.get(charge.id, 0)
    if balance <= 0:
        return f"{charge.id} is paid in full"
    if payer != "insurance" and charge.insurance_estimate > 0:
        return (
            f"{charge.id} is expected to be paid by insurance "
            f"(estimate {format_cents(charge.insurance_estimate)} covers the "
            f"{format_cents(balance)} balance)"
        )
    return f"{charge.id} owes nothing more"  # pragma: no cover - balance > 0 means owing


# --- running a rule ----------------------------------------------------------
@dataclass
class _Candidate:
    charge: Charge
    position: int
    plan: PaymentPlan | None = None
    installment: Installment | None = None

    @property
    def id(self) -> str:
        return self.installment.id if self.installment is not None else self.charge.id


def allocate(request: RuleRequest) -> Plan:
    """Run one compiled rule on one account and say what it would do, as a plan."""
    return _RuleRun(request).run()


class _RuleRun:
    """The state of one rule run; :func:`allocate` is its only way in."""

    def __init__(self, request: RuleRequest) -> None:
        self.request = request
        self.rule = request.rule
        self.account = request.account
        self.figures = AccountFigures.of(request.account)
        self.guards: tuple[CompiledClause[Guard], ...] = (
            *request.settings_guards,
            *request.rule.guards,
        )
        self.made = _Splits(
            ids=PlanIds.of(request.account, request.reserved_ids),
            new_payments=request.new_payments,
            default_unearned_type=request.default_unearned_type,
            rule=request.rule.name,
        )
        self.room = _Room(
            account=request.account,
            figures=self.figures,
            made=self.made,
            charges={c.id: c for c in request.account.charges},
        )
        self.trace: list[TraceEntry] = []
        self.warnings: list[PlanWarning] = []
        self.rule_at = str(request.rule.location)
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
        self.trace.append(
            TraceEntry(
                source=source, target=target, used=used, amount=amount, reason=reason, clause=clause
            )
        )

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
    ) -> Plan:
        splits = () if blocked is not None else tuple(self.made.splits)
        touched_ids = [*touched, *(s.payment for s in splits)]
        return Plan(
            operation=self.request.operation,
            rule=self.rule.name,
            blocked=blocked,
            splits=splits,
            credits=tuple(credits),
            unallocated=unallocated_after(self.figures, touched_ids, splits),
            warnings=tuple(self.warnings),
            trace=tuple(self.trace),
            transfers=() if blocked is not None else tuple(self.made.transfers),
            date=self.request.run_date,
        )

    # -- the steps -------------------------------------------------------------
    def sources(self) -> list[Payment]:
        clause = self.rule.source
        returned = call_clause(clause, "credit", clause.impl.credit, self.source_request)
        known = {p.id: p for p in self.account.payments}
        sources: list[Payment] = []
        for payment in returned:
            if not isinstance(payment, Payment) or known.get(payment.id) != payment:
                shown = getattr(payment, "id", payment)
                raise _refuse(clause, f"returned {shown!r}, which is not a payment of this account")
            if payment.void or payment.type != "payment":
                raise _refuse(clause, f"returned {payment.id}, which is void or a refund")
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
                    raise _refuse(scope, f"named {other!r}, which is not a patient of this account")
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
        position = {c.id: n for n, c in enumerate(self.account.charges)}
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
                if not isinstance(charge, Charge) or self.room.charges.get(charge.id) != charge:
                    shown = getattr(charge, "id", charge)
                    raise _refuse(
                        clause, f"returned {shown!r}, which is not a charge of this account"
                    )
                if charge not in charges:
                    charges.append(charge)
        else:
            charges = list(self.account.charges)
        result: list[_Candidate] = []
        for charge in charges:
            candidate = _Candidate(charge, position[charge.id])
            if not self.selected(candidate):
                continue
            if charge.patient not in in_scope:
                self._out_of_scope(charge.id, charge.patient, patients)
                continue
            result.append(candidate)
        return result

    def _out_of_scope(self, target: str, patient: str, patients: Sequence[str]) -> None:
        self.note(
            target,
            f"{target} is a charge of {patient}, and rule {self.rule.name} pays only "
            f"charges of {', '.join(patients)} (no scope clause includes {patient})",
            self.rule_at,
        )

    def admitted(self) -> frozenset[str]:
        kinds: set[str] = set()
        for scope in self.rule.scopes:
            kinds |= set(scope.impl.admitted_kinds)
        return frozenset(kinds)

    def view(self, candidate: _Candidate) -> Target:
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
            raise _refuse(clause, f"gave sort keys that cannot be compared ({exc})") from exc
        return [c for _, _, c in keyed]

    def target_check(self, candidate: _Candidate, target: Target) -> tuple[str, str | None] | None:
        """Why the target (the candidate's view) is skipped before any credit is looked at."""
        charge = candidate.charge
        if (
            candidate.installment is None
            and charge.kind in self.request.opt_in_kinds
            and charge.kind not in self.admitted()
        ):
            return (
                f"{charge.id} is of kind {charge.kind}, which is a target only when a "
                f"scope clause of the rule admits it",
                self.rule_at,
            )
        for flt in self.rule.filters:
            reason = call_clause(
                flt, "skip_reason", flt.impl.skip_reason, target, self.request.payment
            )
            if reason is not None:
                return str(reason), str(flt.location)
        source = self.rule.source
        reason = call_clause(
            source, "skip_reason", source.impl.skip_reason, target, self.source_request
        )
        if reason is not None:
            return str(reason), str(source.location)
        if target.allocatable <= 0:
            return _unpaid_reason(target, self.room, self.payer), self.rule_at
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
        proposed = ProposedSplit(
            payment=payment,
            target=target,
            amount=amount,
            credit_left=credit_left,
            manual=False,
            run_date=self.request.run_date,
        )
        warnings: list[PlanWarning] = []
        for guard in self.guards:
            verdict = call_clause(guard, "check_split", guard.impl.check_split, proposed)
            if verdict is None:
                continue
            if isinstance(verdict, Refuse):
                return verdict.reason, str(guard.location)
            if isinstance(verdict, Warn):
                warnings.append(PlanWarning(message=verdict.message, clause=str(guard.location)))
                continue
            raise _refuse(
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
                raise _refuse(
                    clause, f"proposed {item!r}, which is not a (target, amount) pair"
                ) from None
            if target_id not in by_id:
                raise _refuse(
                    clause, f"proposed a split to {target_id!r}, which is not a target here"
                )
            if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
                raise _refuse(
                    clause,
                    f"proposed {amount!r} for {target_id}: a split must be a positive amount",
                )
            if target_id in wanted:
                raise _refuse(clause, f"proposed {target_id} twice")
            if amount > by_id[target_id].allocatable:
                raise _refuse(
                    clause,
                    f"proposed {format_cents(amount)} for {target_id}, more than the "
                    f"{format_cents(by_id[target_id].allocatable)} it allows",
                )
            total += amount
            wanted[target_id] = amount
        if total > credit:
            raise _refuse(
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
    def run(self) -> Plan:
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

        operation = self.operation_view(patients, candidates)
        for guard in self.guards:
            reason = call_clause(guard, "check_operation", guard.impl.check_operation, operation)
            if reason is not None:
                if not isinstance(reason, str):
                    raise _refuse(guard, f"returned {reason!r} from check_operation")
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
        for candidate in ordered:
            skipped = self.target_check(candidate, view_of[id(candidate)])
            if skipped is not None:
                self.note(candidate.id, skipped[0], skipped[1])
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
                reason = (
                    f"paid {format_cents(amount)} of the {format_cents(target.allocatable)} due"
                )
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
                what = f"nothing left of {shown}" if shown else "no credit left"
                self.note(
                    candidate.id,
                    f"{what} to pay {candidate.id}",
                    str(rule.source.location),
                    source=shown,
                )
            if need > 0 and not refused:
                unpaid.append(candidate)

        # outcome guards: keep what was decided, or withhold it all
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
        for guard in self.guards:
            reason = call_clause(guard, "check_outcome", guard.impl.check_outcome, outcome)
            if reason is None:
                continue
            if not isinstance(reason, str):
                raise _refuse(guard, f"returned {reason!r} from check_outcome")
            for index in used_entries:
                entry = self.trace[index]
                self.trace[index] = entry.model_copy(
                    update={
                        "used": False,
                        "amount": 0,
                        "reason": f"withheld: {reason}",
                        "clause": str(guard.location),
                    }
                )
            self.warn(reason, str(guard.location))
            self.made.splits.clear()
            self.made.transfers.clear()
            return self.plan(touched=touched)

        credits = self.leftover(sources, left)
        if not self.made.splits:
            self.explain_nothing(payment, credit_before, candidates, eligible)
        return self.plan(credits=credits, touched=[*touched, *(c.payment for c in credits)])

    def leftover(self, sources: list[Payment], left: dict[str, Cents]) -> list[PlannedCredit]:
        clause = self.rule.leftover
        if clause is None:
            return []
        drawn = {s.payment for s in self.made.splits}
        credits: list[PlannedCredit] = []
        for source in sources:
            amount = left.get(source.id, 0)
            if amount <= 0 or (self.rule.pooled and source.id not in drawn):
                continue
            note = call_clause(clause, "leftover", clause.impl.leftover, source, amount)
            if note is None:
                continue
            if not isinstance(note, CreditNote):
                raise _refuse(clause, f"returned {note!r} from leftover (expected a CreditNote)")
            if note == source.credit:
                continue
            credits.append(
                PlannedCredit(
                    payment=source.id,
                    amount=amount,
                    due_to=note.due_to,
                    memo=note.memo,
                    provider=note.provider,
                    office=note.office,
                )
            )
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
                message = f"payment {payment.id} has nothing unallocated: nothing to do"
            else:
                message = (
                    f"account {self.account.id} has no unallocated credit that rule "
                    f"{rule.name} may draw on: nothing to do"
                )
            self.warn(message, str(rule.source.location))
        elif not candidates:
            self.warn(f"rule {rule.name} found no charge to pay: nothing to do", self.rule_at)
        elif not eligible:
            self.warn(
                f"rule {rule.name} found nothing to pay: every candidate was skipped "
                "(see the trace)",
                self.rule_at,
            )
        else:
            self.warn(f"rule {rule.name} made no split: see the trace for why", self.rule_at)


# --- manual allocation -------------------------------------------------------
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
    made = _Splits(
        ids=PlanIds.of(account, request.reserved_ids),
        new_payments=request.new_payments,
        default_unearned_type=request.default_unearned_type,
        rule=None,
    )
    room = _Room(account, figures, made, {c.id: c for c in account.charges})
    payer = payment.payer
    trace: list[TraceEntry] = []
    warnings: list[PlanWarning] = []

    def finish(blocked: BlockedReason | None = None) -> Plan:
        splits = () if blocked is not None else tuple(made.splits)
        return Plan(
            operation="allocate",
            blocked=blocked,
            splits=splits,
            unallocated=unallocated_after(figures, [payment.id], splits),
            warnings=tuple(warnings),
            trace=tuple(trace),
            transfers=() if blocked is not None else tuple(made.transfers),
            date=request.run_date,
        )

    proposals: list[tuple[Target, Cents]] = []
    last_notes: list[TraceEntry] = []
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
                    _unpaid_reason(target, room, payer)
                    if left > 0
                    else f"nothing left of the {format_cents(request.amount)} to pay {charge.id}"
                )
                trace.append(
                    TraceEntry(
                        source=payment.id, target=charge.id, used=False, amount=0, reason=reason
                    )
                )
                continue
            proposals.append((target, take))
            left -= take
        if left > 0:
            last_notes.append(
                TraceEntry(
                    source=payment.id,
                    target=request.target_id,
                    used=False,
                    amount=left,
                    reason=(
                        f"{format_cents(left)} stays unallocated on {payment.id} as appointment "
                        f"{request.target_id}'s unallocated payment"
                    ),
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
                trace.append(
                    TraceEntry(
                        source=payment.id,
                        target=target.id,
                        used=False,
                        amount=0,
                        reason=verdict.reason,
                        clause=str(guard.location),
                    )
                )
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
            raise _refuse(
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
            TraceEntry(
                source=payment.id,
                target=target.id,
                used=True,
                amount=amount,
                reason=f"allocated by hand: {format_cents(amount)} of the "
                f"{format_cents(target.allocatable)} due",
            )
        )
    trace.extend(last_notes)
    return finish()
