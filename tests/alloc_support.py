"""Hand-built ledgers, clauses and rules for the allocation tests (no compiler needed)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from paysplit.core_clauses import PaymentSource, PoolSource
from paysplit.figures import AccountFigures
from paysplit.ledger import (
    Account,
    Adjustment,
    Appointment,
    Charge,
    CreditNote,
    Installment,
    Ledger,
    Office,
    Patient,
    Payment,
    PaymentPlan,
    Practice,
    Provider,
    Split,
)
from paysplit.money import Cents, format_cents
from paysplit.phrases import Vocabulary
from paysplit.policy import (
    Clause,
    Distribution,
    Filter,
    Guard,
    LeftoverHandler,
    Operation,
    Order,
    Outcome,
    Preference,
    ProposedSplit,
    Refuse,
    Scope,
    Source,
    Target,
    Verdict,
    Warn,
)
from paysplit.rules import CORE, CompiledClause, CompiledRule, Location, RuleSet, Settings

FILE = "rules/test.rules"
AS_OF = dt.date(2025, 3, 1)

try:  # written in parallel; the tests check invariants once it exists
    from paysplit.invariants import check_invariants as _check_invariants
except ImportError:  # pragma: no cover - until paysplit.invariants lands
    _check_invariants = None


def check_invariants(ledger: Ledger) -> list[Any]:
    """The project's invariant checker when it exists; else the core ones, checked here."""
    if _check_invariants is not None:
        return list(_check_invariants(ledger))
    problems: list[str] = []
    for account in ledger.accounts:
        figures = AccountFigures.of(account)
        by_id = {s.id: s for s in account.splits}
        for split in account.splits:
            if split.amount == 0:
                problems.append(f"{split.id}: zero split")
            if split.amount < 0:
                original = by_id.get(split.reverses or "")
                reversed_total = -sum(
                    s.amount for s in account.splits if s.reverses == split.reverses
                )
                if original is None or reversed_total > original.amount:
                    problems.append(f"{split.id}: bad reversal")
        for payment in account.payments:
            if payment.void or payment.type == "refund":
                continue
            total = (
                figures.allocated(payment)
                + figures.refunded(payment)
                + figures.unallocated(payment)
            )
            if total != payment.amount:
                problems.append(f"{payment.id}: figures do not add up")
    return problems


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


# --- ledgers -----------------------------------------------------------------
def charge(
    id: str,
    amount: Cents,
    *,
    patient: str = "P1",
    provider: str = "DR1",
    date: str = "2025-01-10",
    status: str = "due_patient",
    kind: str = "procedure",
    estimate: Cents = 0,
    appointment: str | None = None,
    office: str | None = "MAIN",
) -> Charge:
    return Charge(
        id=id,
        patient=patient,
        provider=provider,
        office=office,
        appointment=appointment,
        date=d(date),
        kind=kind,
        amount=format_cents(amount),
        status=status,
        insurance_estimate=format_cents(estimate),
    )


def payment(
    id: str,
    amount: Cents,
    *,
    patient: str = "P1",
    payer: Literal["patient", "insurance"] = "patient",
    provider: str | None = "DR1",
    date: str = "2025-02-01",
    unearned_type: str | None = None,
    appointment: str | None = None,
    credit: CreditNote | None = None,
    void: bool = False,
    type: Literal["payment", "refund"] = "payment",
    refunds: str | None = None,
    office: str | None = "MAIN",
) -> Payment:
    return Payment(
        id=id,
        patient=patient,
        payer=payer,
        provider=provider,
        office=office,
        date=d(date),
        method="cash",
        type=type,
        amount=format_cents(amount),
        unearned_type=unearned_type,
        appointment=appointment,
        credit=credit,
        void=void,
        refunds=refunds,
    )


def split(
    id: str,
    payment: str,
    charge: str | None,
    amount: Cents,
    *,
    installment: str | None = None,
    reverses: str | None = None,
) -> Split:
    return Split(
        id=id,
        payment=payment,
        charge=charge,
        installment=installment,
        amount=format_cents(amount),
        date=d("2025-02-01"),
        reverses=reverses,
    )


def ledger(
    *,
    charges: Sequence[Charge] = (),
    payments: Sequence[Payment] = (),
    splits: Sequence[Split] = (),
    adjustments: Sequence[Adjustment] = (),
    plans: Sequence[PaymentPlan] = (),
    patients: Sequence[Patient] | None = None,
    appointments: Sequence[Appointment] = (),
    extra_accounts: Sequence[Account] = (),
) -> Ledger:
    account = Account(
        id="A1",
        patients=tuple(
            patients
            if patients is not None
            else (Patient(id="P1", name="Jenny"), Patient(id="P2", name="Tom", guarantor="P1"))
        ),
        appointments=tuple(appointments),
        charges=tuple(charges),
        adjustments=tuple(adjustments),
        payments=tuple(payments),
        plans=tuple(plans),
        splits=tuple(splits),
    )
    return Ledger(
        format="paysplit-ledger/1",
        practice=Practice(name="Smile Dental", currency="USD", as_of=AS_OF),
        providers=(Provider(id="DR1", name="Dr One"), Provider(id="DR2", name="Dr Two")),
        offices=(Office(id="MAIN", name="Main"), Office(id="WEST", name="West")),
        accounts=(account, *extra_accounts),
    )


def plan_of(
    id: str, charges: Iterable[str], installments: Iterable[tuple[str, str, Cents]]
) -> PaymentPlan:
    return PaymentPlan(
        id=id,
        patient="P1",
        charges=tuple(charges),
        installments=tuple(
            Installment(id=i, due=d(due), amount=format_cents(a)) for i, due, a in installments
        ),
    )


# --- test clauses ------------------------------------------------------------
@dataclass(frozen=True)
class StatusIn(Filter):
    statuses: tuple[str, ...]

    def skip_reason(self, target: Target, payment: Payment | None) -> str | None:
        status = target.charge.status
        if status in self.statuses:
            return None
        return f"status {status} is not {' or '.join(self.statuses)}"


class WholeAccount(Scope):
    def target_patients(self, account: Account, patient: str) -> Iterable[str]:
        return [p.id for p in account.patients]

    def credit_patients(self, account: Account, patient: str) -> Iterable[str]:
        return [p.id for p in account.patients]


class Family(Scope):
    def target_patients(self, account: Account, patient: str) -> Iterable[str]:
        return [p.id for p in account.patients if p.guarantor == patient]

    def credit_patients(self, account: Account, patient: str) -> Iterable[str]:
        return [p.guarantor for p in account.patients if p.id == patient and p.guarantor]


class AdmitFees(Scope):
    admitted_kinds = frozenset({"fee"})


@dataclass(frozen=True)
class SameProvider(Preference):
    label: str = "provider"

    def prefers(self, payment: Payment, target: Target) -> bool:
        return payment.provider is not None and payment.provider == target.charge.provider


class SameDoctorOnly(Guard):
    def check_split(self, split: ProposedSplit) -> Verdict | None:
        if split.payment.provider in (None, split.target.charge.provider):
            return None
        return Refuse(
            f"credit of {split.payment.provider} cannot pay "
            f"{split.target.charge.provider}'s charge {split.target.charge.id}"
        )


@dataclass(frozen=True)
class OverAllocation(Guard):
    mode: str = "block"

    def check_split(self, split: ProposedSplit) -> Verdict | None:
        if self.mode == "allow" or split.amount <= split.credit_left:
            return None
        message = f"only {format_cents(split.credit_left)} of {split.payment.id} is available"
        return Warn(message) if self.mode == "warn" else Refuse(message)


@dataclass(frozen=True)
class OverPay(Guard):
    mode: str = "block"

    def check_split(self, split: ProposedSplit) -> Verdict | None:
        if self.mode == "allow" or split.amount <= split.target.allocatable:
            return None
        message = f"{split.target.id} allows only {format_cents(split.target.allocatable)}"
        return Warn(message) if self.mode == "warn" else Refuse(message)


class BlockOnUnattached(Guard):
    def check_operation(self, operation: Operation) -> str | None:
        if operation.manual:
            return None
        if any(a.charge is None and a.amount < 0 for a in operation.account.adjustments):
            return "unattached negative adjustments: attach them or allocate manually"
        return None


class CoversAll(Guard):
    def check_outcome(self, outcome: Outcome) -> str | None:
        return "part payment: left for allocation by hand" if outcome.unpaid else None


class WholeOnly(Guard):
    def check_split(self, split: ProposedSplit) -> Verdict | None:
        if split.amount >= split.target.allocatable:
            return None
        return Refuse(f"cannot pay the whole {format_cents(split.target.allocatable)}")


@dataclass(frozen=True)
class CreditDue(LeftoverHandler):
    due_to: Literal["patient", "insurance"] = "patient"

    def leftover(self, payment: Payment, amount: Cents) -> CreditNote | None:
        return CreditNote(
            due_to=self.due_to, memo="Account credit", provider=payment.provider, office=None
        )


@dataclass(frozen=True)
class Fixed(Distribution):
    proposals: tuple[tuple[str, Any], ...]

    def propose(self, credit: Cents, targets: Sequence[Target]) -> Sequence[tuple[str, Cents]]:
        return self.proposals


class Boom(Filter):
    def skip_reason(self, target: Target, payment: Payment | None) -> str | None:
        raise RuntimeError("kaboom")


class ByAmountDesc(Order):
    def sort_key(self, target: Target) -> Any:
        return -target.allocatable


@dataclass(frozen=True)
class OneAppointment(Source):
    """Like ``from appointment credit``: payments waiting on the posted charge's appointment."""

    pooled = True

    def credit(self, request: Any) -> Sequence[Payment]:
        appointment = request.charge.appointment if request.charge is not None else None
        return [
            p
            for p in request.account.payments
            if appointment is not None
            and p.appointment == appointment
            and request.figures.credit_due_to_patient(p) > 0
        ]

    def skip_reason(self, target: Target, request: Any) -> str | None:
        appointment = request.charge.appointment if request.charge is not None else None
        if target.charge.appointment != appointment:
            return f"{target.charge.id} is not a charge of appointment {appointment}"
        return None


# --- compiled rules ----------------------------------------------------------
def at(line: int, column: int = 5) -> Location:
    return Location(FILE, line, column)


def clause(impl: Clause, text: str, line: int, column: int = 5, plugin: str = "test") -> Any:
    return CompiledClause(impl=impl, text=text, location=at(line, column), plugin=plugin, kind="x")


def rule(
    name: str = "r",
    *,
    source: Source | None = None,
    orders: Sequence[tuple[Order, str]] = (),
    filters: Sequence[Filter] = (),
    scopes: Sequence[Scope] = (),
    preferences: Sequence[Preference] = (),
    guards: Sequence[Guard] = (),
    distribution: Distribution | None = None,
    leftover: LeftoverHandler | None = None,
    to_installments: bool = False,
    trigger: Literal["payment", "charge added", "demand"] = "payment",
) -> CompiledRule:
    """A rule as the compiler would make it; clause N of a kind sits on a fixed line."""
    src = source if source is not None else PaymentSource()
    source_text = "from payment" if isinstance(src, PaymentSource) else "from unallocated"
    return CompiledRule(
        name=name,
        title="",
        location=at(1, 1),
        trigger=trigger,
        source=clause(src, source_text, 2, plugin=CORE),
        targets=None,
        to_installments=to_installments,
        orders=tuple(clause(o, text, 3, plugin=CORE) for o, text in orders),
        filters=tuple(
            clause(f, "where status", 4 + n, 18, plugin=CORE) for n, f in enumerate(filters)
        ),
        scopes=tuple(clause(s, "include", 10 + n) for n, s in enumerate(scopes)),
        preferences=tuple(clause(p, "match provider", 20 + n) for n, p in enumerate(preferences)),
        guards=tuple(clause(g, type(g).__name__, 30 + n) for n, g in enumerate(guards)),
        distribution=None if distribution is None else clause(distribution, "distribute", 40),
        leftover=None if leftover is None else clause(leftover, "leftover credit due", 50),
    )


def ruleset(
    *rules: CompiledRule,
    settings_guards: Sequence[Guard] = (),
    default_rule: str | None = None,
    opt_in: frozenset[str] = frozenset({"fee"}),
    default_unearned_type: str | None = None,
) -> RuleSet:
    return RuleSet(
        files=(FILE,),
        rules={r.name: r for r in rules},
        settings=Settings(
            default_unearned_type=default_unearned_type,
            default_rule=default_rule,
            guards=tuple(
                clause(g, type(g).__name__, 60 + n) for n, g in enumerate(settings_guards)
            ),
        ),
        vocabulary=Vocabulary(opt_in_kinds=opt_in),
        digest="sha256:test",
        plugins={"test": "1.0"},
    )


POOL = PoolSource()


def figures_of(ledger: Ledger, account: str = "A1") -> AccountFigures:
    found = ledger.account(account)
    assert found is not None
    return AccountFigures.of(found)
