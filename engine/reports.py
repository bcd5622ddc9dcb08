"""Reports: pure functions of a ledger, exactly as ``docs/semantics.md`` defines them.

* :func:`payments_report` - per payment: amount, allocated, refunded, unallocated (001);
* :func:`dashboard` - DrChrono's patient dashboard (000) for a patient, an account or
  the practice: total paid, allocated, unallocated, responsibility, statement and
  total balance; :func:`patient_dashboards` gives one per patient;
* :func:`provider_balances` - Oasis' per-doctor balances of an account (003);
* :func:`aging` - the aged debtors report with unallocated credit (003);
* :func:`appointment_balances` - an account's appointments with their balance and
  their unallocated payment (000's appointment list and Live Claims Feed).

Every figure is an ``int`` of cents; each report's ``to_json()`` gives the JSON of
``docs/cli.md`` with amounts as two-place strings. Nothing here changes a ledger.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from paysplit.errors import UsageError
from paysplit.figures import AccountFigures
from paysplit.ledger import Account, Ledger, Payment
from paysplit.money import Cents, format_cents

__all__ = [
    "AgingReport",
    "AgingRow",
    "AppointmentRow",
    "Dashboard",
    "PaymentRow",
    "PaymentsReport",
    "ProviderBalances",
    "ProviderRow",
    "aging",
    "appointment_balances",
    "dashboard",
    "patient_dashboards",
    "payments_report",
    "provider_balances",
]

NO_PROVIDER = "none"
"""The per-provider row of credit that belongs to no provider."""
ALL_PROVIDERS = "all"
"""The per-provider row that sums the others (Oasis' "00 (all)")."""


def _find_account(ledger: Ledger, account_id: str) -> Account:
    account = ledger.account(account_id)
    if account is None:
        raise UsageError(f"there is no account {account_id} in this ledger")
    return account


def _account_of_patient(ledger: Ledger, patient_id: str) -> Account:
    for account in ledger.accounts:
        if any(p.id == patient_id for p in account.patients):
            return account
    raise UsageError(f"there is no patient {patient_id} in this ledger")


# --------------------------------------------------------------------------
# Payments (001)
# --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PaymentRow:
    """One payment with what became of it. A refund's own row has nothing allocated,
    refunded or unallocated: its money counts in the payment it refunds."""

    account: str
    id: str
    patient: str
    payer: str
    provider: str | None
    type: str
    amount: Cents
    allocated: Cents
    refunded: Cents
    unallocated: Cents
    void: bool

    @property
    def negative(self) -> bool:
        """More was allocated than paid (001's negative unallocated amount)."""
        return self.unallocated < 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "patient": self.patient,
            "payer": self.payer,
            "provider": self.provider,
            "amount": format_cents(self.amount),
            "allocated": format_cents(self.allocated),
            "refunded": format_cents(self.refunded),
            "unallocated": format_cents(self.unallocated),
            "negative": self.negative,
            "void": self.void,
        }


@dataclass(frozen=True, slots=True)
class PaymentsReport:
    rows: tuple[PaymentRow, ...]

    def row(self, payment_id: str) -> PaymentRow:
        return next(r for r in self.rows if r.id == payment_id)

    def to_json(self) -> dict[str, Any]:
        return {"payments": [row.to_json() for row in self.rows]}


def payments_report(ledger: Ledger, account_id: str | None = None) -> PaymentsReport:
    """Every payment of the ledger (or of one account) in ledger order."""
    accounts = ledger.accounts if account_id is None else (_find_account(ledger, account_id),)
    rows: list[PaymentRow] = []
    for account in accounts:
        figures = AccountFigures.of(account)
        for payment in account.payments:
            rows.append(
                PaymentRow(
                    account=account.id,
                    id=payment.id,
                    patient=payment.patient,
                    payer=payment.payer,
                    provider=payment.provider,
                    type=payment.type,
                    amount=payment.amount,
                    allocated=figures.allocated(payment),
                    refunded=figures.refunded(payment),
                    unallocated=figures.unallocated(payment),
                    void=payment.void,
                )
            )
    return PaymentsReport(tuple(rows))


# --------------------------------------------------------------------------
# The patient dashboard (000)
# --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Dashboard:
    """DrChrono's dashboard for a patient, an account or the whole practice."""

    scope: Literal["patient", "account", "practice"]
    id: str
    name: str
    total_paid: Cents
    allocated: Cents
    responsibility: Cents

    @property
    def unallocated(self) -> Cents:
        return self.total_paid - self.allocated

    @property
    def statement_balance(self) -> Cents:
        return self.responsibility - self.allocated

    @property
    def total_balance(self) -> Cents:
        return self.responsibility - self.total_paid

    def to_json(self) -> dict[str, Any]:
        return {
            self.scope: self.id,
            "total_paid": format_cents(self.total_paid),
            "allocated": format_cents(self.allocated),
            "unallocated": format_cents(self.unallocated),
            "responsibility": format_cents(self.responsibility),
            "statement_balance": format_cents(self.statement_balance),
            "total_balance": format_cents(self.total_balance),
        }


def _dashboard_sums(
    accounts: Iterable[Account], patient_id: str | None
) -> tuple[Cents, Cents, Cents]:
    total_paid = allocated = responsibility = 0
    for account in accounts:
        figures = AccountFigures.of(account)
        for payment in account.payments:
            if payment.void or payment.payer != "patient":
                continue
            if patient_id is None or payment.patient == patient_id:
                total_paid += payment.amount
                allocated += figures.allocated(payment)
        for charge in account.charges:
            if patient_id is None or charge.patient == patient_id:
                responsibility += figures.responsibility(charge)
        for adjustment in account.adjustments:
            if adjustment.charge is None and (
                patient_id is None or adjustment.patient == patient_id
            ):
                responsibility += adjustment.amount
    return total_paid, allocated, responsibility


def dashboard(
    ledger: Ledger, account_id: str | None = None, patient_id: str | None = None
) -> Dashboard:
    """The dashboard of one patient, one account, or (neither given) the whole practice."""
    if account_id is not None and patient_id is not None:
        raise UsageError("a dashboard is of an account or of a patient, not both")
    if patient_id is not None:
        account = _account_of_patient(ledger, patient_id)
        name = next(p.name for p in account.patients if p.id == patient_id)
        sums = _dashboard_sums((account,), patient_id)
        return Dashboard("patient", patient_id, name, *sums)
    if account_id is not None:
        account = _find_account(ledger, account_id)
        return Dashboard("account", account_id, "", *_dashboard_sums((account,), None))
    practice = ledger.practice.name
    return Dashboard("practice", practice, practice, *_dashboard_sums(ledger.accounts, None))


def patient_dashboards(ledger: Ledger, account_id: str | None = None) -> tuple[Dashboard, ...]:
    """One dashboard per patient (of the ledger, or of one account), in ledger order."""
    accounts = ledger.accounts if account_id is None else (_find_account(ledger, account_id),)
    return tuple(
        Dashboard("patient", patient.id, patient.name, *_dashboard_sums((account,), patient.id))
        for account in accounts
        for patient in account.patients
    )


# --------------------------------------------------------------------------
# Per-provider balances (003)
# --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProviderRow:
    provider: str
    """A provider id, ``none`` or ``all``."""
    invoices: Cents
    unallocated_credit: Cents

    @property
    def net(self) -> Cents:
        return self.invoices - self.unallocated_credit

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "invoices": format_cents(self.invoices),
            "unallocated_credit": format_cents(self.unallocated_credit),
            "net": format_cents(self.net),
        }


@dataclass(frozen=True, slots=True)
class ProviderBalances:
    account: str
    rows: tuple[ProviderRow, ...]

    def row(self, provider: str) -> ProviderRow:
        return next(r for r in self.rows if r.provider == provider)

    def to_json(self) -> dict[str, Any]:
        return {"account": self.account, "rows": [row.to_json() for row in self.rows]}


def _credit_owner(payment: Payment) -> str | None:
    """The provider a payment's unallocated credit is reported under (004's credit provider)."""
    if payment.credit is not None and payment.credit.provider is not None:
        return payment.credit.provider
    return payment.provider


def _unallocated_credit(account: Account, figures: AccountFigures) -> dict[str | None, Cents]:
    """Unallocated credit by provider: payments' unallocated amounts and the magnitude of
    unattached negative adjustments."""
    credit: defaultdict[str | None, Cents] = defaultdict(int)
    for payment in account.payments:
        if not payment.void:
            credit[_credit_owner(payment)] += figures.unallocated(payment)
    for adjustment in account.adjustments:
        if adjustment.charge is None:
            credit[adjustment.provider] += -adjustment.amount
    return credit


def provider_balances(ledger: Ledger, account_id: str) -> ProviderBalances:
    """Oasis' balances of one account per doctor: invoices, unallocated credit, net.

    Rows follow the ledger's ``providers`` list, for each provider with a charge, payment
    or adjustment on the account; then ``none`` when some payment (its credit) or
    unattached adjustment has no provider; then ``all``. An attached adjustment is part
    of its charge's balance, so it never makes a ``none`` row by itself.
    """
    account = _find_account(ledger, account_id)
    figures = AccountFigures.of(account)
    invoices: defaultdict[str | None, Cents] = defaultdict(int)
    present: set[str | None] = set()
    for charge in account.charges:
        invoices[charge.provider] += figures.balance(charge)
        present.add(charge.provider)
    for payment in account.payments:
        if not payment.void:
            present.add(_credit_owner(payment))
            if payment.provider is not None:
                present.add(payment.provider)
    for adjustment in account.adjustments:
        if adjustment.provider is not None or adjustment.charge is None:
            present.add(adjustment.provider)
    credit = _unallocated_credit(account, figures)
    keys: list[str | None] = [p.id for p in ledger.providers if p.id in present]
    if None in present:
        keys.append(None)
    rows = [ProviderRow(k or NO_PROVIDER, invoices[k], credit[k]) for k in keys]
    rows.append(
        ProviderRow(
            ALL_PROVIDERS,
            sum(r.invoices for r in rows),
            sum(r.unallocated_credit for r in rows),
        )
    )
    return ProviderBalances(account.id, tuple(rows))


# --------------------------------------------------------------------------
# Aged debtors (003)
# --------------------------------------------------------------------------
BUCKETS = ("current", "31_60", "61_90", "over_90")


def bucket_of(days: int) -> str:
    """The aging bucket of a charge ``days`` after its service date (future dates: current)."""
    if days <= 30:
        return "current"
    if days <= 60:
        return "31_60"
    if days <= 90:
        return "61_90"
    return "over_90"


@dataclass(frozen=True, slots=True)
class AgingRow:
    account: str
    """An account id, or ``total`` for the practice row."""
    buckets: dict[str, Cents]
    unallocated_credit: Cents

    @property
    def outstanding(self) -> Cents:
        return sum(self.buckets.values())

    @property
    def net(self) -> Cents:
        return self.outstanding - self.unallocated_credit

    def amounts(self) -> dict[str, str]:
        out = {name: format_cents(self.buckets[name]) for name in BUCKETS}
        out["outstanding"] = format_cents(self.outstanding)
        out["unallocated_credit"] = format_cents(self.unallocated_credit)
        out["net"] = format_cents(self.net)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"account": self.account, **self.amounts()}


@dataclass(frozen=True, slots=True)
class AgingReport:
    as_of: dt.date
    rows: tuple[AgingRow, ...]
    total: AgingRow

    def row(self, account_id: str) -> AgingRow:
        return next(r for r in self.rows if r.account == account_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "accounts": [row.to_json() for row in self.rows],
            "total": self.total.amounts(),
        }


def aging(ledger: Ledger, as_of: dt.date | None = None) -> AgingReport:
    """Every account's outstanding charge balances by age, its unallocated credit and net.

    ``as_of`` defaults to the ledger's run date. A charge's balance (negative when
    overpaid) goes in the bucket of the days since its service date, so ``outstanding``
    is the ``invoices`` of the per-provider ``all`` row and ``net`` its net.
    """
    when = as_of or ledger.run_date()
    rows: list[AgingRow] = []
    for account in ledger.accounts:
        figures = AccountFigures.of(account)
        buckets = dict.fromkeys(BUCKETS, 0)
        for charge in account.charges:
            balance = figures.balance(charge)
            if balance:
                buckets[bucket_of((when - charge.date).days)] += balance
        credit = sum(_unallocated_credit(account, figures).values())
        rows.append(AgingRow(account.id, buckets, credit))
    total = AgingRow(
        "total",
        {name: sum(r.buckets[name] for r in rows) for name in BUCKETS},
        sum(r.unallocated_credit for r in rows),
    )
    return AgingReport(when, tuple(rows), total)


# --------------------------------------------------------------------------
# Appointments (000)
# --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AppointmentRow:
    """An appointment as 000's payment form lists it, with its unallocated payment."""

    appointment: str
    patient: str
    start: dt.datetime | None
    balance: Cents
    """Sum of the balances of the appointment's charges."""
    unallocated_payment: Cents
    """Unallocated amount of the payments posted to the appointment (the "appt's
    unallocated payment" of the Live Claims Feed)."""
    charges: int
    statuses: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "appointment": self.appointment,
            "patient": self.patient,
            "start": self.start.isoformat() if self.start else None,
            "balance": format_cents(self.balance),
            "unallocated_payment": format_cents(self.unallocated_payment),
            "statuses": list(self.statuses),
        }


def appointment_balances(ledger: Ledger, account_id: str) -> tuple[AppointmentRow, ...]:
    """Each appointment of the account, in ledger order, with balance and unallocated payment."""
    account = _find_account(ledger, account_id)
    figures = AccountFigures.of(account)
    rows: list[AppointmentRow] = []
    for appointment in account.appointments:
        charges = [c for c in account.charges if c.appointment == appointment.id]
        statuses = tuple(dict.fromkeys(c.status for c in charges))
        waiting = sum(
            figures.unallocated(p) for p in account.payments if p.appointment == appointment.id
        )
        rows.append(
            AppointmentRow(
                appointment.id,
                appointment.patient,
                appointment.start,
                sum(figures.balance(c) for c in charges),
                waiting,
                len(charges),
                statuses,
            )
        )
    return tuple(rows)
