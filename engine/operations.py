"""The operations of ``docs/semantics.md``, as a library: ledger (+ rules) + request → plan.

Every function here is pure: it reads a :class:`~paysplit.ledger.Ledger` and
returns a :class:`~paysplit.plans.Plan`; nothing is written. To change the
ledger, apply the plan with :func:`paysplit.apply.apply_plan`. A bad reference
(an unknown payment, charge, split or rule) or an impossible request (a void
payment, a refund above what is unallocated) raises
:class:`~paysplit.errors.UsageError` with one clear sentence. A policy that
blocks the operation, or a guard that refuses a manual one, does not raise:
the plan comes back with ``blocked`` set and no splits.

Amounts are ``int`` cents; a string (``"12.50"``, ``"-100"``) is parsed exactly.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from paysplit.allocation import (
    ManualRequest,
    PlanIds,
    RuleRequest,
    TargetKind,
    allocate,
    allocate_by_hand,
    call_clause,
    unallocated_after,
)
from paysplit.apply import apply_to_account
from paysplit.errors import UsageError
from paysplit.figures import AccountFigures
from paysplit.ledger import Account, Charge, Ledger, Payment, Split
from paysplit.money import Cents, JsonInt, JsonNumber, MoneyError, format_cents, parse_amount
from paysplit.plans import BlockedReason, Plan, PlannedSplit, PlannedVoid, TraceEntry
from paysplit.policy import Operation
from paysplit.rules import CompiledRule, RuleSet

__all__ = [
    "allocate_manual",
    "apply_rule",
    "charge_from_json",
    "payment_from_json",
    "payment_request",
    "post_charge",
    "post_payment",
    "refund",
    "request_base",
    "unallocate",
    "void",
]

AmountLike = Cents | str | Decimal


# --- looking things up -------------------------------------------------------
def _money(value: AmountLike, what: str) -> Cents:
    if isinstance(value, bool):
        raise UsageError(f"{what}: {value} is not an amount")
    if isinstance(value, int):
        return value
    try:
        return parse_amount(value)
    except MoneyError as exc:
        raise UsageError(f"{what}: {exc}") from None


def _payment(ledger: Ledger, payment_id: str) -> tuple[Account, Payment]:
    for account in ledger.accounts:
        for payment in account.payments:
            if payment.id == payment_id:
                return account, payment
    raise UsageError(f"there is no payment {payment_id} in the ledger")


def _usable_payment(ledger: Ledger, payment_id: str, doing: str) -> tuple[Account, Payment]:
    account, payment = _payment(ledger, payment_id)
    if payment.void:
        raise UsageError(f"payment {payment_id} is void and cannot be {doing}")
    if payment.type == "refund":
        raise UsageError(f"{payment_id} is a refund, not a payment, and cannot be {doing}")
    return account, payment


def _patient_account(ledger: Ledger, patient_id: str) -> Account:
    for account in ledger.accounts:
        if any(p.id == patient_id for p in account.patients):
            return account
    raise UsageError(f"there is no patient {patient_id} in the ledger")


def _account(ledger: Ledger, account_id: str) -> Account:
    account = ledger.account(account_id)
    if account is None:
        known = ", ".join(a.id for a in ledger.accounts) or "none"
        raise UsageError(f"there is no account {account_id} in the ledger (accounts: {known})")
    return account


def _rule(rules: RuleSet | None, rule_name: str | None, doing: str) -> CompiledRule | None:
    """The named rule, the settings' default rule, or None when neither is given."""
    if rule_name is None:
        if rules is None or rules.settings.default_rule is None:
            return None
        rule_name = rules.settings.default_rule
    if rules is None:
        raise UsageError(f"{doing} with rule {rule_name} needs rule files (--rules)")
    rule = rules.rule(rule_name)
    if rule is None:
        known = ", ".join(sorted(rules.rules)) or "none"
        files = ", ".join(rules.files) or "the rule files"
        raise UsageError(f"there is no rule {rule_name} in {files} (rules: {known})")
    return rule


def _reserved(ledger: Ledger) -> frozenset[str]:
    return frozenset(s.id for a in ledger.accounts for s in a.splits)


def _with_account(ledger: Ledger, account: Account) -> Ledger:
    accounts = tuple(account if a.id == account.id else a for a in ledger.accounts)
    return ledger.model_copy(update={"accounts": accounts})


def _check_references(ledger: Ledger, account: Account, record: Charge | Payment) -> None:
    providers = {p.id for p in ledger.providers}
    offices = {o.id for o in ledger.offices}
    if record.provider is not None and record.provider not in providers:
        raise UsageError(f"{record.id}: provider {record.provider} is not in the ledger")
    if record.office is not None and record.office not in offices:
        raise UsageError(f"{record.id}: office {record.office} is not in the ledger")
    appointments = {a.id for a in account.appointments}
    if record.appointment is not None and record.appointment not in appointments:
        raise UsageError(
            f"{record.id}: appointment {record.appointment} is not an appointment of "
            f"account {account.id}"
        )


def request_base(rules: RuleSet | None) -> dict[str, Any]:
    """What every rule request of these rules carries: settings guards, opt-in kinds and
    the default unearned type (computed once by callers that make many requests)."""
    if rules is None:
        return {"default_unearned_type": "prepayment"}
    return {
        "settings_guards": rules.settings.guards,
        "opt_in_kinds": rules.vocabulary.opt_in_kinds,
        "default_unearned_type": rules.unearned_type_of(None),
    }


def _blocked_by_settings(
    rules: RuleSet | None,
    name: str,
    account: Account,
    payment: Payment | None,
    run_date: dt.date,
) -> BlockedReason | None:
    """Operation guards of the settings, for a manual operation that makes no split."""
    if rules is None:
        return None
    figures = AccountFigures.of(account)
    view = Operation(
        name=name,
        account=account,
        figures=figures,
        run_date=run_date,
        payment=payment,
        patients=frozenset() if payment is None else frozenset({payment.patient}),
        charges=(),
        manual=True,
    )
    for guard in rules.settings.guards:
        reason = call_clause(guard, "check_operation", guard.impl.check_operation, view)
        if reason is not None:
            return BlockedReason(
                reason=str(reason), clause=str(guard.location), plugin=guard.plugin
            )
    return None


# --- building records from JSON ----------------------------------------------
def _load_json(text_or_doc: str | Mapping[str, Any], what: str) -> dict[str, Any]:
    if isinstance(text_or_doc, str):
        try:
            doc = json.loads(text_or_doc, parse_float=JsonNumber, parse_int=JsonInt)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{what} is not valid JSON: {exc.msg} at column {exc.colno}") from None
    else:
        doc = dict(text_or_doc)
    if not isinstance(doc, dict):
        raise UsageError(f"{what} must be a JSON object")
    return doc


def _validation_message(error: ValidationError, what: str) -> str:
    parts = []
    for problem in error.errors():
        where = ".".join(str(p) for p in problem["loc"]) or what
        parts.append(f"{where}: {problem['msg']}")
    return f"{what} is not valid: " + "; ".join(parts)


def payment_from_json(text_or_doc: str | Mapping[str, Any], ledger: Ledger) -> Payment:
    """A new payment from ``--payment JSON`` / ``--new-payment JSON``.

    ``type`` defaults to ``payment`` and ``date`` to the ledger's run date.
    """
    doc = _load_json(text_or_doc, "the payment")
    doc.setdefault("type", "payment")
    doc.setdefault("date", ledger.run_date().isoformat())
    try:
        return Payment.model_validate(doc)
    except ValidationError as exc:
        raise UsageError(_validation_message(exc, "the payment")) from None


def charge_from_json(text_or_doc: str | Mapping[str, Any], ledger: Ledger) -> Charge:
    """A new charge from ``--charge JSON``; ``date`` defaults to the ledger's run date."""
    doc = _load_json(text_or_doc, "the charge")
    doc.setdefault("date", ledger.run_date().isoformat())
    try:
        return Charge.model_validate(doc)
    except ValidationError as exc:
        raise UsageError(_validation_message(exc, "the charge")) from None


def _add_payment(ledger: Ledger, payment: Payment) -> tuple[Ledger, Account]:
    if any(p.id == payment.id for a in ledger.accounts for p in a.payments):
        raise UsageError(f"there is already a payment {payment.id} in the ledger")
    if payment.type != "payment":
        raise UsageError(f"{payment.id}: a posted payment has type payment (refund with `refund`)")
    if payment.amount <= 0:
        raise UsageError(
            f"{payment.id}: a payment's amount must be above zero, "
            f"not {format_cents(payment.amount)}"
        )
    if payment.void or payment.refunds is not None:
        raise UsageError(f"{payment.id}: a new payment cannot be void or name a payment it refunds")
    account = _patient_account(ledger, payment.patient)
    _check_references(ledger, account, payment)
    account = account.model_copy(update={"payments": (*account.payments, payment)})
    return _with_account(ledger, account), account


# --- 1, 2, 9: running a rule -------------------------------------------------
def apply_rule(
    ledger: Ledger,
    rules: RuleSet,
    rule_name: str | None = None,
    *,
    payment_id: str | None = None,
    new_payment: Payment | None = None,
    account_id: str | None = None,
    charge_ids: Sequence[str] | None = None,
    as_of: dt.date | None = None,
) -> Plan:
    """Run a rule on one payment (``payment_id`` or a ``new_payment`` posted now), or a
    pooled rule (``from unallocated`` / ``from unearned``) on one account.

    ``charge_ids`` limits the targets to those charges or installments (002);
    ``as_of`` is the run date (default: the ledger's ``as_of``, else today).
    """
    given = [x for x in (payment_id, new_payment, account_id) if x is not None]
    if len(given) != 1:
        raise UsageError("apply needs exactly one of a payment, a new payment or an account")
    rule = _rule(rules, rule_name, "apply")
    if rule is None:
        raise UsageError("no rule named, and the rules have no `default rule` setting")
    run_date = as_of or ledger.run_date()
    if new_payment is not None:
        return _post_and_run(ledger, rules, new_payment, rule, "apply", run_date, charge_ids)
    payment: Payment | None = None
    if payment_id is not None:
        account, payment = _usable_payment(ledger, payment_id, "allocated")
    else:
        assert account_id is not None
        account = _account(ledger, account_id)
        if not rule.pooled:
            raise UsageError(
                f"rule {rule.name} pays from a payment ({rule.source.text or 'from payment'}): "
                "give a payment (--payment or --new-payment), not an account"
            )
    selection = _selection(account, charge_ids)
    request = RuleRequest(
        account=account,
        rule=rule,
        run_date=run_date,
        operation="apply",
        payment=payment,
        charge_ids=selection,
        reserved_ids=_reserved(ledger),
        **request_base(rules),
    )
    return allocate(request)


def payment_request(
    account: Account,
    rule: CompiledRule,
    payment: Payment,
    run_date: dt.date,
    base: Mapping[str, Any],
    figures: AccountFigures | None = None,
) -> RuleRequest:
    """The request :func:`apply_rule` makes for ``payment_id`` (no ``charge_ids``) on a
    ledger that holds only ``account``; ``base`` is :func:`request_base` of the rules,
    ``figures`` the account's figures if the caller has them. The payment must be
    usable (not void, not a refund), as ``apply_rule`` checks.

    (``apply_rule`` reserves the split ids of the whole ledger; for a ledger of one
    account they are the account's own, which new ids never reuse anyway.)
    """
    return RuleRequest(
        account=account,
        rule=rule,
        run_date=run_date,
        operation="apply",
        payment=payment,
        charge_ids=None,
        figures=figures,
        **base,
    )


def _selection(account: Account, charge_ids: Sequence[str] | None) -> tuple[str, ...] | None:
    if charge_ids is None:
        return None
    known = {c.id for c in account.charges} | {
        i.id for plan in account.plans for i in plan.installments
    }
    for charge_id in charge_ids:
        if charge_id not in known:
            raise UsageError(f"{charge_id} is not a charge or installment of account {account.id}")
    return tuple(charge_ids)


def _post_and_run(
    ledger: Ledger,
    rules: RuleSet | None,
    payment: Payment,
    rule: CompiledRule | None,
    operation: str,
    run_date: dt.date,
    charge_ids: Sequence[str] | None = None,
) -> Plan:
    posted, account = _add_payment(ledger, payment)
    if rule is None:
        figures = AccountFigures.of(account)
        return Plan(
            operation=operation,
            payments=(payment,),
            unallocated={payment.id: figures.unallocated(payment)},
            date=run_date,
        )
    request = RuleRequest(
        account=account,
        rule=rule,
        run_date=run_date,
        operation=operation,
        payment=payment,
        charge_ids=_selection(account, charge_ids),
        new_payments=frozenset({payment.id}),
        reserved_ids=_reserved(posted),
        **request_base(rules),
    )
    plan = allocate(request)
    unallocated = dict(plan.unallocated)
    unallocated.setdefault(payment.id, AccountFigures.of(account).unallocated(payment))
    return plan.model_copy(update={"payments": (payment,), "unallocated": unallocated})


def post_payment(
    ledger: Ledger, rules: RuleSet | None, payment: Payment, rule_name: str | None = None
) -> Plan:
    """Add a payment; run the named rule, or the settings' ``default rule``; with
    neither, the payment stays unallocated (003 step 1)."""
    rule = _rule(rules, rule_name, "post-payment")
    return _post_and_run(ledger, rules, payment, rule, "post-payment", ledger.run_date())


def post_charge(ledger: Ledger, rules: RuleSet | None, charge: Charge) -> Plan:
    """Add a charge, then run every ``on charge added`` rule, in the rule files' order."""
    if any(c.id == charge.id for a in ledger.accounts for c in a.charges):
        raise UsageError(f"there is already a charge {charge.id} in the ledger")
    account = _patient_account(ledger, charge.patient)
    _check_references(ledger, account, charge)
    account = account.model_copy(update={"charges": (*account.charges, charge)})
    with_charge = account
    run_date = ledger.run_date()
    reserved = set(_reserved(ledger))
    names: list[str] = []
    parts: list[Plan] = []
    for rule in [] if rules is None else rules.rules_on("charge added"):
        request = RuleRequest(
            account=account,
            rule=rule,
            run_date=run_date,
            operation="post-charge",
            charge=charge,
            reserved_ids=frozenset(reserved),
            **request_base(rules),
        )
        part = allocate(request)
        names.append(rule.name)
        if part.blocked is not None:
            return part.model_copy(update={"charges": (charge,), "rule": rule.name})
        parts.append(part)
        reserved.update(s.id for s in part.splits)
        account = apply_to_account(account, part)
    splits = tuple(s for p in parts for s in p.splits)
    touched = [pid for p in parts for pid in p.unallocated]
    return Plan(
        operation="post-charge",
        rule=", ".join(names) or None,
        splits=splits,
        credits=tuple(c for p in parts for c in p.credits),
        unallocated=unallocated_after(AccountFigures.of(with_charge), touched, splits),
        warnings=tuple(w for p in parts for w in p.warnings),
        trace=tuple(t for p in parts for t in p.trace),
        transfers=tuple(t for p in parts for t in p.transfers),
        charges=(charge,),
        date=run_date,
    )


# --- 3: manual allocation ----------------------------------------------------
def allocate_manual(
    ledger: Ledger,
    rules: RuleSet | None,
    payment_id: str,
    *,
    charge_id: str | None = None,
    installment_id: str | None = None,
    appointment_id: str | None = None,
    amount: AmountLike,
) -> Plan:
    """Allocate ``amount`` of a payment by hand to a charge, an installment or an
    appointment (its charges in ledger order; the rest stays on the payment).

    The settings' guards check each split: a refusal gives a blocked plan.
    Without rules no guard runs, and an over-allocation still carries a warning.
    """
    given = [x for x in (charge_id, installment_id, appointment_id) if x is not None]
    if len(given) != 1:
        raise UsageError("allocate needs exactly one of a charge, an installment or an appointment")
    cents = _money(amount, "amount")
    if cents <= 0:
        raise UsageError(f"amount: allocate a positive amount, not {format_cents(cents)}")
    account, payment = _usable_payment(ledger, payment_id, "allocated")
    kind: TargetKind
    if charge_id is not None:
        kind, target = "charge", charge_id
        if not any(c.id == charge_id for c in account.charges):
            raise UsageError(
                f"{charge_id} is not a charge of account {account.id} (payment {payment_id}'s)"
            )
    elif installment_id is not None:
        kind, target = "installment", installment_id
        if not any(i.id == installment_id for p in account.plans for i in p.installments):
            raise UsageError(f"{installment_id} is not an installment of account {account.id}")
    else:
        assert appointment_id is not None
        kind, target = "appointment", appointment_id
        if not any(a.id == appointment_id for a in account.appointments):
            raise UsageError(f"{appointment_id} is not an appointment of account {account.id}")
    base = request_base(rules)
    base.pop("opt_in_kinds", None)
    request = ManualRequest(
        account=account,
        payment=payment,
        target_kind=kind,
        target_id=target,
        amount=cents,
        run_date=ledger.run_date(),
        reserved_ids=_reserved(ledger),
        **base,
    )
    return allocate_by_hand(request)


# --- 6: refund ---------------------------------------------------------------
def _refund_id(ledger: Ledger, payment: Payment, taken: set[str]) -> str:
    n = sum(1 for a in ledger.accounts for p in a.payments if p.refunds == payment.id)
    while True:
        n += 1
        candidate = f"{payment.id}-R{n}"
        if candidate not in taken:
            taken.add(candidate)
            return candidate


def refund(
    ledger: Ledger,
    rules: RuleSet | None,
    *,
    payment_id: str | None = None,
    patient_id: str | None = None,
    amount: AmountLike,
    date: dt.date | None = None,
    method: str | None = None,
    provider: str | None = None,
    memo: str | None = None,
) -> Plan:
    """Refund unallocated credit of one payment, or of a patient's payments oldest first
    (one refund each). ``amount`` is what is refunded; its sign does not matter (000
    enters it negative). A refund inherits its payment's patient, payer, provider,
    office and method unless given; its date defaults to the ledger's run date.
    """
    if (payment_id is None) == (patient_id is None):
        raise UsageError("refund needs exactly one of a payment or a patient")
    cents = abs(_money(amount, "amount"))
    if cents == 0:
        raise UsageError("amount: a refund of 0.00 refunds nothing")
    if provider is not None and provider not in {p.id for p in ledger.providers}:
        raise UsageError(f"provider {provider} is not in the ledger")
    run_date = date or ledger.run_date()
    if payment_id is not None:
        account, payment = _usable_payment(ledger, payment_id, "refunded")
        figures = AccountFigures.of(account)
        available = figures.unallocated(payment)
        if cents > available:
            raise UsageError(
                f"a refund of {format_cents(cents)} is more than the "
                f"{format_cents(available)} unallocated on payment {payment_id}"
            )
        pool = [payment]
    else:
        assert patient_id is not None
        account = _patient_account(ledger, patient_id)
        figures = AccountFigures.of(account)
        ordered = sorted(
            (
                (p.date, n, p)
                for n, p in enumerate(account.payments)
                if p.patient == patient_id and figures.credit_due_to_patient(p) > 0
            ),
            key=lambda entry: (entry[0], entry[1]),
        )
        pool = [p for _, _, p in ordered]
        available = sum(figures.credit_due_to_patient(p) for p in pool)
        if cents > available:
            raise UsageError(
                f"a refund of {format_cents(cents)} is more than the "
                f"{format_cents(available)} of unallocated credit patient {patient_id} has"
            )
    blocked = _blocked_by_settings(
        rules, "refund", account, pool[0] if payment_id is not None else None, run_date
    )
    taken = {p.id for a in ledger.accounts for p in a.payments}
    refunds: list[Payment] = []
    trace: list[TraceEntry] = []
    left = cents
    for payment in pool:
        if left <= 0:
            break
        unallocated = figures.unallocated(payment)
        take = min(left, unallocated)
        refund_id = _refund_id(ledger, payment, taken)
        refunds.append(
            Payment(
                id=refund_id,
                patient=payment.patient,
                payer=payment.payer,
                provider=provider if provider is not None else payment.provider,
                office=payment.office,
                date=run_date,
                method=method if method is not None else payment.method,
                type="refund",
                amount=format_cents(-take),  # ledger amounts from text are exact cents
                unearned_type=payment.unearned_type,
                memo=memo or "",
                refunds=payment.id,
            )
        )
        trace.append(
            TraceEntry(
                source=payment.id,
                target=refund_id,
                used=True,
                amount=take,
                reason=f"refunded {format_cents(take)} of the {format_cents(unallocated)} "
                f"unallocated on {payment.id}",
            )
        )
        left -= take
    unallocated_map = {
        p.id: figures.unallocated(p) + next(r.amount for r in refunds if r.refunds == p.id)
        for p in account.payments
        if any(r.refunds == p.id for r in refunds)
    }
    return Plan(
        operation="refund",
        blocked=blocked,
        payments=() if blocked is not None else tuple(refunds),
        unallocated=unallocated_map,
        trace=tuple(trace),
        date=run_date,
    )


# --- 5: unallocate -----------------------------------------------------------
def unallocate(ledger: Ledger, split_id: str, amount: AmountLike | None = None) -> Plan:
    """Reverse all (the default) or part of a split: a reversal split with the negative
    amount names it in ``reverses``, and the money returns to the payment's unallocated."""
    found: tuple[Account, Split] | None = None
    for account in ledger.accounts:
        for split in account.splits:
            if split.id == split_id:
                found = (account, split)
    if found is None:
        raise UsageError(f"there is no split {split_id} in the ledger")
    account, split = found
    if split.reverses is not None or split.amount <= 0:
        raise UsageError(f"split {split_id} is itself a reversal and cannot be reversed")
    _, payment = _payment(ledger, split.payment)
    if payment.void:
        raise UsageError(f"split {split_id} is of void payment {payment.id}: it no longer counts")
    reversed_already = -sum(s.amount for s in account.splits if s.reverses == split_id)
    remaining = split.amount - reversed_already
    if remaining <= 0:
        raise UsageError(f"split {split_id} is already reversed in full")
    cents = remaining if amount is None else abs(_money(amount, "amount"))
    if cents == 0:
        raise UsageError("amount: reversing 0.00 changes nothing")
    if cents > remaining:
        raise UsageError(
            f"split {split_id} has {format_cents(remaining)} left to reverse, "
            f"not {format_cents(cents)}"
        )
    ids = PlanIds.of(account, _reserved(ledger))
    reversal = PlannedSplit(
        id=ids.next_split(payment.id),
        payment=payment.id,
        charge=split.charge,
        installment=split.installment,
        amount=-cents,
        reverses=split_id,
    )
    figures = AccountFigures.of(account)
    return Plan(
        operation="unallocate",
        splits=(reversal,),
        unallocated=unallocated_after(figures, [payment.id], [reversal]),
        trace=(
            TraceEntry(
                source=payment.id,
                target=split.installment or split.charge or split_id,
                used=True,
                amount=-cents,
                reason=f"reversed {format_cents(cents)} of split {split_id}; it returns to "
                f"{payment.id}'s unallocated amount",
            ),
        ),
        date=ledger.run_date(),
    )


# --- 7: void -----------------------------------------------------------------
def void(ledger: Ledger, payment_id: str, reason: str | None = None) -> Plan:
    """Mark a payment void: its splits and refunds stop counting; nothing is deleted."""
    account, payment = _payment(ledger, payment_id)
    if payment.void:
        raise UsageError(f"payment {payment_id} is already void")
    voided = payment.model_copy(update={"void": True})
    after = account.model_copy(
        update={"payments": tuple(voided if p.id == payment_id else p for p in account.payments)}
    )
    figures = AccountFigures.of(after)
    touched: Iterable[str] = [payment_id] + ([payment.refunds] if payment.refunds else [])
    unallocated = {p.id: figures.unallocated(p) for p in after.payments if p.id in set(touched)}
    return Plan(
        operation="void",
        voids=(PlannedVoid(payment=payment_id, reason=reason),),
        unallocated=unallocated,
        date=ledger.run_date(),
    )
