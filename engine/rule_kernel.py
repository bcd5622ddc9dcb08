"""The fast path of a simple rule: a ``from payment`` rule run on the charges themselves.

:func:`paysplit.allocation.allocate` runs any rule through the clause contract: a
frozen :class:`~paysplit.policy.Target` view per charge, each filter, order and
guard called on it. For a batch of millions of accounts that is most of the cost.
Many practice rules are simpler: they pay from the payment, and every filter,
order and split guard they use reads only the charge's own fields and the
payment, which a clause promises by giving a *charge form*
(:meth:`~paysplit.policy.Filter.charge_form`, :meth:`~paysplit.policy.Order.charge_form`,
:meth:`~paysplit.policy.Guard.charge_form`). :func:`kernel_for` recognises such a
rule once; :meth:`RuleKernel.run_account` then applies it to each payment of an
account in turn, as ``paysplit batch`` does, on integers and the ledger's own
records, and returns the same plans, byte for byte, as ``apply_rule`` payment
after payment would (``tests/test_rule_kernel.py`` holds it to that). Any rule it
does not recognise runs on the general path; nothing here decides differently.

It can also leave the trace out (``paysplit batch --trace none``): the plans keep
their splits, credits, unallocated amounts and warnings, and the work that only
explains (sentences, probes of charges the credit never reached) is not done.
With the trace, a rule without a scope clause has its trace written as JSON text
as it runs (:mod:`paysplit.trace_json`), the bytes ``apply --json`` prints.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from paysplit.apply import apply_to_account
from paysplit.clause_calls import call_clause, refuse
from paysplit.core_clauses import TOTAL_CHARGE_KEYS, PaymentSource
from paysplit.figures import AccountFigures
from paysplit.ledger import Account, Charge, CreditNote, Payment
from paysplit.money import Cents, format_cents
from paysplit.plans import PlanDraft, PlannedCredit, PlanWarning, SplitRow, TraceRow
from paysplit.policy import Filter, Guard, Order, Refuse, Source, Verdict, Warn
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
from paysplit.target_views import charge_unpaid_reason
from paysplit.trace_json import (
    CLAUSE,
    NOT_USED,
    SOURCE,
    TARGET,
    TO_TARGET,
    Endings,
    ending,
    quoted,
    used_entry,
)

__all__ = ["RuleKernel", "kernel_for"]

ChargeFilter = Callable[[Charge], str | None]
ChargeTest = Callable[[Charge], bool]
ChargeKey = Callable[[Charge], Any]
ChargeGuard = Callable[[Payment, Charge], Verdict | None]


class _Irregular(Exception):
    """Plugin code in a kernel run raised or returned what the contract does not allow:
    the account goes to the general path, which reports it exactly."""


def _overrides(clause: CompiledClause[Any], name: str, base: type[Any]) -> bool:
    method = getattr(clause.impl, name, None)
    return getattr(method, "__func__", None) is not getattr(base, name)


def _charge_form(clause: CompiledClause[Any]) -> Any:
    form = call_clause(clause, "charge_form", clause.impl.charge_form)
    if form is not None and not callable(form):
        raise refuse(clause, f"returned {form!r} from charge_form (expected a function or None)")
    return form


def _kept_by_form(form: ChargeFilter, charge: Charge) -> bool:
    return form(charge) is None


def _charge_predicate(clause: CompiledClause[Filter], form: ChargeFilter) -> ChargeTest:
    """The filter's charge predicate, or its charge form asked only whether it keeps."""
    if not _overrides(clause, "charge_predicate", Filter):
        return functools.partial(_kept_by_form, form)
    test = call_clause(clause, "charge_predicate", clause.impl.charge_predicate)
    if test is None:
        return functools.partial(_kept_by_form, form)
    if not callable(test):
        raise refuse(
            clause, f"returned {test!r} from charge_predicate (expected a function or None)"
        )
    return test


def kernel_for(rule: CompiledRule, base: Mapping[str, Any]) -> RuleKernel | None:
    """The kernel of ``rule`` under the rule set's ``base`` request fields
    (:func:`paysplit.operations.request_base`), or None when the rule needs the
    general path: a pooled source, a ``to`` clause or installments, a distribution,
    preferences, more than one order, operation or outcome guards, or a filter, order
    or split guard without a charge form."""
    if (
        type(rule.source.impl) is not PaymentSource
        or _overrides(rule.source, "skip_reason", Source)
        or rule.targets is not None
        or rule.to_installments
        or rule.distribution is not None
        or rule.preferences
        or len(rule.orders) > 1
    ):
        return None
    guards: tuple[CompiledClause[Guard], ...] = (*base.get("settings_guards", ()), *rule.guards)
    if any(
        _overrides(g, "check_operation", Guard) or _overrides(g, "check_outcome", Guard)
        for g in guards
    ):
        return None
    split_guards = [
        g
        for g in guards
        if _overrides(g, "check_split", Guard)
        and getattr(g.impl, "speaks_only_beyond_limits", False) is not True
    ]
    filters: list[tuple[CompiledClause[Filter], ChargeFilter]] = []
    keeps: list[ChargeTest] = []
    for flt in rule.filters:
        form = _charge_form(flt)
        if form is None:
            return None
        filters.append((flt, form))
        keeps.append(_charge_predicate(flt, form))
    order: tuple[CompiledClause[Order], ChargeKey] | None = None
    if rule.orders:
        form = _charge_form(rule.orders[0])
        if form is None:
            return None
        order = (rule.orders[0], form)
    checks: list[tuple[CompiledClause[Guard], ChargeGuard]] = []
    for guard in split_guards:
        form = _charge_form(guard)
        if form is None:
            return None
        checks.append((guard, form))
    return RuleKernel(rule, base, tuple(filters), order, tuple(checks), tuple(keeps))


_WHOLE_NUMBERS, _TEXTS = frozenset({int}), frozenset({str})
_KEY = itemgetter(0)


def _next_split_id(payment_id: str, count: int, taken: set[str]) -> tuple[str, int]:
    """The payment's next free split id after its ``count`` splits ("PAY1-3"), now taken,
    and the new count (an id already in the ledger is skipped)."""
    while True:
        count += 1
        split_id = f"{payment_id}-{count}"
        if split_id not in taken:
            taken.add(split_id)
            return split_id, count


def _in_order(ranked: list[tuple[Any, int]]) -> list[int]:
    """The positions of ``ranked`` (key, position) sorted by key, ties in ledger order
    (``ranked`` is sorted in place).

    One order for every payment is the order of each payment's own charges only when
    the keys are totally ordered: whole numbers (dates as ordinals, amounts) or texts.
    Other keys run on the general path, which sorts per payment."""
    kinds = {type(key) for key, _ in ranked}
    if not (kinds <= _WHOLE_NUMBERS or kinds <= _TEXTS):
        raise _Irregular
    ranked.sort(key=_KEY)  # stable: ties keep ledger order
    return [at for _, at in ranked]


def _split_counts(account: Account) -> tuple[set[str], dict[str, int]]:
    """The account's split ids, and each payment's count of splits (for the next ids)."""
    split_ids = set()
    existing: dict[str, int] = {}
    for split in account.splits:
        split_ids.add(split.id)
        existing[split.payment] = existing.get(split.payment, 0) + 1
    return split_ids, existing


def _oldest_first(charge: Charge) -> int:
    return charge.date.toordinal()


class RuleKernel:
    """A simple rule, ready to run on accounts (made by :func:`kernel_for`)."""

    def __init__(
        self,
        rule: CompiledRule,
        base: Mapping[str, Any],
        filters: tuple[tuple[CompiledClause[Filter], ChargeFilter], ...],
        order: tuple[CompiledClause[Order], ChargeKey] | None,
        checks: tuple[tuple[CompiledClause[Guard], ChargeGuard], ...],
        keeps: tuple[ChargeTest, ...] = (),
    ) -> None:
        self.rule = rule
        self.name = rule.name
        self.rule_at = str(rule.location)
        self.source_at = str(rule.source.location)
        self.filters = tuple(
            (clause, form, str(clause.location), Endings(str(clause.location)))
            for clause, form in filters
        )
        """Per filter: its clause (kept for coverage and messages), its charge form (what
        the kernel calls), where it is, and the trace's JSON ending of each of its
        reasons (:meth:`_run_traced`)."""
        self.keeps = keeps or tuple(functools.partial(_kept_by_form, f) for _, f in filters)
        """Per filter, whether it keeps a charge (the run without the trace asks only that)."""
        self.order = order
        self.order_at = str(order[0].location) if order is not None else self.rule_at
        self.order_at_json = quoted(self.order_at)
        self.key_every_charge = order is not None and order[1] not in TOTAL_CHARGE_KEYS
        """The order is a vendor's: its key is asked about every charge in scope, paid or
        skipped, as the general path asks (a key that fails anywhere, fails there too)."""
        self.checks = tuple((form, str(clause.location)) for clause, form in checks)
        # (reasons at these clauses name their charge: ``once``, never remembered)
        self.rule_endings = Endings(self.rule_at)
        self.source_endings = Endings(self.source_at)
        self.rule_at_json = quoted(self.rule_at)
        self.opt_in_kinds: frozenset[str] = base.get("opt_in_kinds", frozenset())
        admitted: set[str] = set()
        for scope in rule.scopes:
            admitted |= set(scope.impl.admitted_kinds)
        self.barred_kinds = self.opt_in_kinds - admitted
        """Opt-in kinds no scope of the rule admits: never targets."""
        self.default_unearned_type: str = base.get("default_unearned_type", "prepayment")
        self._nothing = tuple(  # the same for every payment: made once (they are frozen)
            PlanWarning(message=nothing_to_do(self.name, candidates, eligible), clause=self.rule_at)
            for candidates, eligible in ((False, False), (True, False), (True, True))
        )

    # -- one account -----------------------------------------------------------------
    def run_account(
        self,
        account: Account,
        figures: AccountFigures,
        run_date: dt.date,
        queue: Sequence[str],
        *,
        trace: bool = True,
    ) -> list[tuple[str, PlanDraft]] | None:
        """The rule applied to each payment of ``queue`` in turn, each seeing the splits
        the earlier ones made: what ``apply_rule`` then ``apply_to_account`` give, payment
        after payment (a plan is applied unless it is empty; none here is blocked).

        None when plugin code raised or returned something the contract does not allow
        (say a sort key that cannot be compared): the caller then runs the account on
        the general path, which says exactly what went wrong, or (a clause that failed
        only on a charge the general path never asks about) gives the plans.
        """
        try:
            return self._run(account, figures, run_date, queue, trace)
        except Exception:  # _Irregular, or plugin code raised: the general path says which
            return None

    def _run(
        self,
        account: Account,
        figures: AccountFigures,
        run_date: dt.date,
        queue: Sequence[str],
        trace: bool,
    ) -> list[tuple[str, PlanDraft]]:
        if not self.rule.scopes:
            if trace:
                return self._run_traced(account, figures, run_date, queue)
            return self._run_bare(account, figures, run_date, queue)
        # A rule with a scope clause: a payment may pay other patients' charges, and the
        # scope sees the account as the plans so far left it.
        charges = account.charges
        by_id = figures.payments
        # What does not depend on the payment, once per account, in one pass over the
        # charges: each one's sort key (ties by ledger position) and why it is skipped, as
        # rule_targets.TargetSteps.target_check says it (a kind the rule does not admit,
        # else the first filter that skips it).
        form = self.order[1] if self.order is not None else _oldest_first
        filters, barred, rule_at = self.filters, self.barred_kinds, self.rule_at
        skipped: dict[int, tuple[str, str] | None] = {}
        ranked: list[tuple[Any, int]] = []  # (key, position)
        for at, charge in enumerate(charges):
            reason = None
            if charge.kind in barred:
                reason = (kind_not_admitted(charge), rule_at)
            else:
                for _, check, where, _ in filters:
                    said = check(charge)
                    if said is not None:
                        reason = (str(said), where)
                        break
            skipped[at] = reason
            ranked.append((form(charge), at))
        order = _in_order(ranked)
        split_ids, existing = _split_counts(account)
        balances: dict[str, Cents] = {}  # before this run's first payment, once read
        plans: list[tuple[str, PlanDraft]] = []
        for number, payment_id in enumerate(queue, start=1):
            payment = by_id[payment_id]
            if payment.void or payment.type != "payment":
                raise _Irregular
            plan = self._run_payment(
                account, figures, payment, run_date, order, skipped, balances, split_ids,
                existing, trace,
            )  # fmt: skip
            plans.append((payment_id, plan))
            if number < len(queue) and not plan.is_empty:
                for row in plan.splits:
                    balances[row[2]] -= row[4]  # the next payment sees this one's splits
                account = apply_to_account(account, plan)
        return plans

    def _run_bare(
        self,
        account: Account,
        figures: AccountFigures,
        run_date: dt.date,
        queue: Sequence[str],
    ) -> list[tuple[str, PlanDraft]]:
        """The run of a rule without a scope clause (the batch's usual case), without the
        trace: each payment pays only its own patient's charges, and a charge a
        filter skips, or the credit never reaches, is never looked at again. One
        function, as the hand-written loop is: per charge, only what decides."""
        charges = account.charges
        by_id = figures.payments
        payers = {by_id[p].patient for p in queue}
        form = self.order[1] if self.order is not None else _oldest_first
        keeps, barred = self.keeps, self.barred_kinds
        one = keeps[0] if len(keeps) == 1 else None
        key_every_charge = self.key_every_charge
        in_lane: dict[str, int] = {}  # each patient's charges, skipped or not
        ranked: list[tuple[Any, int, str]] = []  # (key, position, patient) of those to pay
        kinds: set[type] = set()
        for at, charge in enumerate(charges):
            patient = charge.patient
            if patient not in payers:
                continue
            in_lane[patient] = in_lane.get(patient, 0) + 1
            if key_every_charge:
                key = form(charge)
                kinds.add(type(key))
            if charge.kind in barred:
                continue
            if one is not None:  # one filter: the usual rule
                kept = one(charge)
                if kept is False:
                    continue
                if kept is not True:
                    raise _Irregular  # (a vendor's predicate that answers neither)
            else:
                for kept_by in keeps:
                    kept = kept_by(charge)
                    if kept is False:
                        break
                    if kept is not True:
                        raise _Irregular
                else:
                    ranked.append((key if key_every_charge else form(charge), at, patient))
                continue
            ranked.append((key if key_every_charge else form(charge), at, patient))
        if not key_every_charge:
            kinds = {type(entry[0]) for entry in ranked}
        if not (kinds <= _WHOLE_NUMBERS or kinds <= _TEXTS):
            raise _Irregular
        ranked.sort(key=_KEY)  # stable: ties keep ledger order
        lanes: dict[str, list[Charge]] = {}
        for _, at, patient in ranked:
            lane = lanes.get(patient)
            if lane is None:
                lanes[patient] = [charges[at]]
            else:
                lane.append(charges[at])
        split_ids, existing = _split_counts(account)
        adjusted = figures.adjustment_total_by_charge
        paid_before = figures.split_total_by_charge
        balances: dict[str, Cents] = {}  # before this run's first payment, once read
        checks = self.checks
        leftover = self.rule.leftover
        default_unearned_type = self.default_unearned_type
        name = self.name
        plans: list[tuple[str, PlanDraft]] = []
        for payment_id in queue:
            payment = by_id[payment_id]
            if payment.void or payment.type != "payment":
                raise _Irregular
            insurance = payment.payer == "insurance"
            credit = left = figures.unallocated(payment)
            unearned_type = payment.unearned_type or default_unearned_type
            count = existing.get(payment_id, 0)
            warnings: list[PlanWarning] = []
            splits: list[SplitRow] = []
            eligible = False
            for charge in lanes.get(payment.patient, ()):
                if left <= 0:
                    break  # (with credit, nothing is paid only after every charge is seen)
                charge_id = charge.id
                balance = balances.get(charge_id)
                if balance is None:
                    balance = balances[charge_id] = (
                        charge.amount + adjusted.get(charge_id, 0) - paid_before.get(charge_id, 0)
                    )
                allocatable = balance if insurance else balance - charge.insurance_estimate
                if allocatable <= 0:
                    continue
                eligible = True
                if checks:
                    said: list[PlanWarning] = []
                    refused = False
                    for guard, where in checks:
                        verdict = guard(payment, charge)
                        if verdict is None:
                            continue
                        if isinstance(verdict, Refuse):
                            refused = True
                            break
                        if isinstance(verdict, Warn):
                            said.append(PlanWarning(message=verdict.message, clause=where))
                            continue
                        raise _Irregular
                    if refused:
                        continue
                    for warning in said:
                        if warning not in warnings:
                            warnings.append(warning)
                amount = allocatable if allocatable < left else left
                split_id, count = _next_split_id(payment_id, count, split_ids)
                splits.append(
                    (split_id, payment_id, charge_id, None, amount, f"T-{split_id}", unearned_type)
                )
                balances[charge_id] = balance - amount  # the next payment sees this split
                left -= amount
            existing[payment_id] = count
            credits = self._leftover(payment, left) if leftover is not None and left > 0 else ()
            if not splits:
                if credit <= 0:
                    warning = PlanWarning(
                        message=nothing_unallocated(payment_id), clause=self.source_at
                    )
                else:
                    in_scope = in_lane.get(payment.patient, 0)
                    warning = self._nothing[0 if not in_scope else 1 if not eligible else 2]
                if warning not in warnings:
                    warnings.append(warning)
            plans.append(
                (
                    payment_id,
                    PlanDraft(
                        operation="apply",
                        rule=name,
                        blocked=None,
                        splits=splits,
                        credits=credits,
                        unallocated={payment_id: left},
                        warnings=tuple(warnings),
                        trace=[],
                        date=run_date,
                    ),
                )
            )
        return plans

    def _run_traced(
        self,
        account: Account,
        figures: AccountFigures,
        run_date: dt.date,
        queue: Sequence[str],
    ) -> list[tuple[str, PlanDraft]]:
        """The run of a rule without a scope clause, with the trace: the plans of
        :meth:`_run_bare`, and a trace that says of every charge of the account, as the
        general path's does, entry for entry, why the payment paid it or not. The trace
        is written as JSON text (:attr:`PlanDraft.trace_json`) from pieces quoted once
        (:mod:`paysplit.trace_json`): each charge's id once per account, a filter's
        reason once per worker while it keeps coming back, the entries about the other
        patients' charges once per account and payer."""
        charges = account.charges
        by_id = figures.payments
        payers = {by_id[p].patient for p in queue}
        form = self.order[1] if self.order is not None else _oldest_first
        filters, barred, rule_endings = self.filters, self.barred_kinds, self.rule_endings
        # What does not depend on the payment, once per account, in one pass over the
        # charges: each one's id quoted, and for the payers' charges the sort key and the
        # entry of a charge the rule never pays, as rule_targets.TargetSteps.target_check
        # says it (a kind the rule does not admit, else the first filter that skips it).
        ids: list[str] = []
        owners: list[str] = []  # each charge's patient
        ranked: list[tuple[Any, int]] = []  # (key, position)
        skipped: dict[int, str] = {}
        for at, charge in enumerate(charges):
            quoted_id = quoted(charge.id)
            ids.append(quoted_id)
            owner = charge.patient
            owners.append(owner)
            if owner not in payers:
                continue
            ranked.append((form(charge), at))
            if charge.kind in barred:
                skipped[at] = TARGET + quoted_id + rule_endings.once(kind_not_admitted(charge))
                continue
            for _, check, _, ending_of in filters:
                said = check(charge)
                if said is not None:
                    skipped[at] = TARGET + quoted_id + ending_of(str(said))
                    break
        lanes: dict[str, list[int]] = {}  # each payer's charges, in the rule's order
        for at in _in_order(ranked):
            patient = charges[at].patient
            lane = lanes.get(patient)
            if lane is None:
                lanes[patient] = [at]
            else:
                lane.append(at)
        split_ids, existing = _split_counts(account)
        balances: dict[str, Cents] = {}  # before this run's first payment, once read
        others: dict[str, str] = {}  # per payer, the entries of the others' charges
        source_endings, order_at = self.source_endings, self.order_at_json
        plans: list[tuple[str, PlanDraft]] = []
        for payment_id in queue:
            payment = by_id[payment_id]
            if payment.void or payment.type != "payment":
                raise _Irregular
            patient, payer = payment.patient, payment.payer
            insurance = payer == "insurance"
            credit = left = figures.unallocated(payment)
            trace: list[str] = []
            outside = others.get(patient)
            if outside is None:
                outside = others[patient] = self._others(owners, ids, patient)
            if outside:
                trace.append(outside)
            lane = lanes.get(patient, [])
            eligible: list[tuple[Charge, int, Cents]] = []
            for at in lane:
                entry = skipped.get(at)
                if entry is not None:
                    trace.append(entry)
                    continue
                charge = charges[at]
                balance = balances.get(charge.id)
                if balance is None:
                    balance = balances[charge.id] = figures.balance(charge)
                allocatable = balance if insurance else balance - charge.insurance_estimate
                if allocatable > 0:
                    eligible.append((charge, at, allocatable))
                    continue
                unpaid = charge_unpaid_reason(charge, balance, payer)
                trace.append(TARGET + ids[at] + rule_endings.once(unpaid))
            # Pay them in order from the payment's credit.
            to = SOURCE + quoted(payment_id) + TO_TARGET
            warnings: list[PlanWarning] = []
            splits: list[SplitRow] = []
            unearned_type = payment.unearned_type or self.default_unearned_type
            count = existing.get(payment_id, 0)
            for charge, at, allocatable in eligible:
                if left <= 0:
                    bar = self._verdict(payment, charge, probe=True, warnings=warnings)
                    if bar is None:
                        why = source_endings.once(nothing_left(payment_id, charge.id))
                    else:
                        why = ending(*bar)
                    trace.append(to + ids[at] + why)
                    continue
                amount = allocatable if allocatable < left else left
                refused = self._verdict(payment, charge, probe=False, warnings=warnings)
                if refused is not None:
                    trace.append(to + ids[at] + ending(*refused))
                    continue
                charge_id = charge.id
                split_id, count = _next_split_id(payment_id, count, split_ids)
                splits.append(
                    (split_id, payment_id, charge_id, None, amount, f"T-{split_id}", unearned_type)
                )
                balances[charge_id] -= amount  # the next payment sees this split
                left -= amount
                reason = paid(amount, allocatable)
                trace.append(used_entry(to + ids[at], format_cents(amount), reason, order_at))
            existing[payment_id] = count
            credits = self._leftover(payment, left)
            if not splits:
                self._explain_nothing(payment, credit, len(lane), bool(eligible), warnings)
            plans.append(
                (
                    payment_id,
                    PlanDraft(
                        operation="apply",
                        rule=self.name,
                        blocked=None,
                        splits=splits,
                        credits=credits,
                        unallocated={payment_id: left},
                        warnings=tuple(warnings),
                        trace_json=",".join(trace),
                        date=run_date,
                    ),
                )
            )
        return plans

    def _others(self, owners: list[str], ids: list[str], patient: str) -> str:
        """The trace entries of the charges of every patient but ``patient``, whose payment
        pays only their own, in ledger order (rule_targets.TargetSteps.candidates's)."""
        ends: dict[str, str] = {}
        entries: list[str] = []
        for other, quoted_id in zip(owners, ids, strict=True):
            if other == patient:
                continue
            end = ends.get(other)
            if end is None:
                # The reason is the charge's id, then this: quoted apart and joined
                # (escaping is per character), so no sentence is quoted charge by charge.
                said = out_of_scope_end(other, self.name, [patient])
                end = ends[other] = quoted(said)[1:] + CLAUSE + self.rule_at_json + "}"
            entries.append(f"{TARGET}{quoted_id}{NOT_USED}{quoted_id[:-1]}{end}")
        return ",".join(entries)

    def _scope(self, account: Account, patient: str) -> list[str]:
        known = [p.id for p in account.patients]
        wanted = {patient}
        for scope in self.rule.scopes:
            for other in scope.impl.target_patients(account, patient):
                if other not in known:
                    raise _Irregular
                wanted.add(other)
        return [p for p in known if p in wanted]

    def _run_payment(
        self,
        account: Account,
        figures: AccountFigures,
        payment: Payment,
        run_date: dt.date,
        order: list[int],
        skipped: dict[int, tuple[str, str] | None],
        balances: dict[str, Cents],
        split_ids: set[str],
        existing: dict[str, int],
        trace: bool,
    ) -> PlanDraft:
        """One payment's plan under a rule with a scope clause. ``order`` is the charges'
        order (positions in the account)."""
        rows: list[TraceRow] = []
        warnings: list[PlanWarning] = []
        payer = payment.payer
        insurance = payer == "insurance"
        payment_id = payment.id
        patients = self._scope(account, payment.patient)
        in_scope = set(patients)
        credit = figures.unallocated(payment)
        charges = account.charges
        rule_at = self.rule_at

        if trace:
            # Charges out of scope, in ledger order, as rule_targets.TargetSteps.candidates
            # says them.
            why: dict[str, str] = {}
            for charge in charges:
                patient = charge.patient
                if patient in in_scope:
                    continue
                end = why.get(patient)
                if end is None:
                    end = why[patient] = out_of_scope_end(patient, self.name, patients)
                rows.append((None, charge.id, False, 0, charge.id + end, rule_at))

        # The targets in scope, in the rule's order, each checked before anything is paid.
        in_scope_count = 0
        eligible: list[tuple[Charge, Cents]] = []
        for at in order:
            charge = charges[at]
            if charge.patient not in in_scope:
                continue
            in_scope_count += 1
            reason = skipped[at]
            if reason is None:
                balance = balances.get(charge.id)
                if balance is None:
                    balance = balances[charge.id] = figures.balance(charge)
                # target_views.charge_amounts(balance, estimate, payer, 0)[2] when positive,
                # inline: this runs for every charge a payment could pay
                allocatable = balance if insurance else balance - charge.insurance_estimate
                if allocatable > 0:
                    eligible.append((charge, allocatable))
                    continue
                if not trace:
                    continue
                reason = (charge_unpaid_reason(charge, balance, payer), rule_at)
            if trace:
                rows.append((None, charge.id, False, 0, reason[0], reason[1]))

        # Pay them in order from the payment's credit.
        splits: list[SplitRow] = []
        left = credit
        unearned_type = payment.unearned_type or self.default_unearned_type
        count = existing.get(payment_id, 0)
        for charge, allocatable in eligible:
            if left <= 0:
                if trace:
                    bar = self._verdict(payment, charge, probe=True, warnings=warnings)
                    if bar is None:
                        bar = (nothing_left(payment_id, charge.id), self.source_at)
                    rows.append((payment_id, charge.id, False, 0, bar[0], bar[1]))
                continue
            amount = allocatable if allocatable < left else left
            refused = self._verdict(payment, charge, probe=False, warnings=warnings)
            if refused is not None:
                if trace:
                    rows.append((payment_id, charge.id, False, 0, refused[0], refused[1]))
                continue
            split_id, count = _next_split_id(payment_id, count, split_ids)
            splits.append(
                (split_id, payment_id, charge.id, None, amount, f"T-{split_id}", unearned_type)
            )
            left -= amount
            if trace:
                rows.append(
                    (
                        payment_id,
                        charge.id,
                        True,
                        amount,
                        paid(amount, allocatable),
                        self.order_at,
                    )
                )
        existing[payment_id] = count

        credits = self._leftover(payment, left)
        if not splits:
            self._explain_nothing(payment, credit, in_scope_count, bool(eligible), warnings)
        return PlanDraft(
            operation="apply",
            rule=self.name,
            blocked=None,
            splits=splits,
            credits=credits,
            unallocated={payment_id: left},  # (a leftover credit names this payment too)
            warnings=tuple(warnings),
            trace=rows,
            date=run_date,
        )

    def _verdict(
        self, payment: Payment, charge: Charge, *, probe: bool, warnings: list[PlanWarning]
    ) -> tuple[str, str] | None:
        """The split guards' refusal (reason, clause), or None; a real split's warnings
        are noted (a probe's are not), as ``rule_credit.CreditSteps.check_split`` does."""
        if not self.checks:
            return None
        said: list[PlanWarning] = []
        for form, where in self.checks:
            verdict = form(payment, charge)
            if verdict is None:
                continue
            if isinstance(verdict, Refuse):
                return verdict.reason, where
            if isinstance(verdict, Warn):
                said.append(PlanWarning(message=verdict.message, clause=where))
                continue
            raise _Irregular
        if not probe:
            for warning in said:
                if warning not in warnings:
                    warnings.append(warning)
        return None

    def _leftover(self, payment: Payment, left: Cents) -> tuple[PlannedCredit, ...]:
        clause = self.rule.leftover
        if clause is None or left <= 0:
            return ()
        note = clause.impl.leftover(payment, left)
        if note is None:
            return ()
        if not isinstance(note, CreditNote):
            raise _Irregular
        if note == payment.credit:
            return ()
        return (leftover_credit(payment.id, left, note),)

    def _explain_nothing(
        self,
        payment: Payment,
        credit: Cents,
        candidates: int,
        eligible: bool,
        warnings: list[PlanWarning],
    ) -> None:
        """The warning of a plan that makes no split, as ``rule_run.RuleRun.explain_nothing``."""
        if credit <= 0:
            warning = PlanWarning(
                message=nothing_unallocated(payment.id),
                clause=self.source_at,
            )
        else:
            warning = self._nothing[0 if not candidates else 1 if not eligible else 2]
        if warning not in warnings:
            warnings.append(warning)
