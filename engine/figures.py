"""Derived figures of one account: balances, allocated, refunded, unallocated.

Everything here is the arithmetic of ``docs/semantics.md`` "Derived figures",
computed once per account into plain dictionaries of cents so that reports and
the allocation core read the same numbers the same way. A void payment counts
nowhere, and neither do its splits nor the refunds that are themselves void.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from paysplit.ledger import Account, Charge, Installment, Payment, PaymentPlan
from paysplit.money import Cents


@dataclass(slots=True)
class AccountFigures:
    """Sums over one account's splits, adjustments and refunds, keyed by record id."""

    account: Account
    installments: dict[str, tuple[PaymentPlan, Installment]] = field(default_factory=dict)
    split_total_by_charge: dict[str, Cents] = field(default_factory=dict)
    insurance_split_total_by_charge: dict[str, Cents] = field(default_factory=dict)
    split_total_by_installment: dict[str, Cents] = field(default_factory=dict)
    split_total_by_payment: dict[str, Cents] = field(default_factory=dict)
    adjustment_total_by_charge: dict[str, Cents] = field(default_factory=dict)
    refunded_by_payment: dict[str, Cents] = field(default_factory=dict)
    unattached_adjustments: Cents = 0
    """Sum of unattached (negative) adjustments: a credit on the account."""
    # The account's records by id are made when first read: the batch fast path reads
    # neither, and for an account of 20 charges they were two thirds of the cost of `of`.
    _charges: dict[str, Charge] | None = field(default=None, repr=False, compare=False)
    _payments: dict[str, Payment] | None = field(default=None, repr=False, compare=False)

    @property
    def charges(self) -> dict[str, Charge]:
        """{charge id: charge} of the account, in ledger order."""
        if self._charges is None:
            self._charges = {c.id: c for c in self.account.charges}
        return self._charges

    @property
    def payments(self) -> dict[str, Payment]:
        """{payment id: payment} of the account, in ledger order."""
        if self._payments is None:
            self._payments = {p.id: p for p in self.account.payments}
        return self._payments

    @classmethod
    def of(cls, account: Account) -> AccountFigures:
        figures = cls(account=account)
        for plan in account.plans:
            for installment in plan.installments:
                figures.installments[installment.id] = (plan, installment)
        # Filled in place: most accounts have few splits, and a dictionary per sum
        # made once is cheaper than a defaultdict copied into one.
        by_charge = figures.split_total_by_charge
        insurance_by_charge = figures.insurance_split_total_by_charge
        by_installment = figures.split_total_by_installment
        by_payment = figures.split_total_by_payment
        if account.splits:
            payments = figures.payments
            for split in account.splits:
                payment = payments.get(split.payment)
                if payment is None or payment.void:
                    continue
                amount = split.amount
                by_payment[split.payment] = by_payment.get(split.payment, 0) + amount
                charge = split.charge
                if charge is not None:
                    by_charge[charge] = by_charge.get(charge, 0) + amount
                    if payment.payer == "insurance":
                        insurance_by_charge[charge] = insurance_by_charge.get(charge, 0) + amount
                if split.installment is not None:
                    by_installment[split.installment] = (
                        by_installment.get(split.installment, 0) + amount
                    )
        adjustments = figures.adjustment_total_by_charge
        for adjustment in account.adjustments:
            if adjustment.charge is None:
                figures.unattached_adjustments += adjustment.amount
            else:
                adjustments[adjustment.charge] = (
                    adjustments.get(adjustment.charge, 0) + adjustment.amount
                )
        refunded = figures.refunded_by_payment
        for payment in account.payments:
            if payment.type == "refund" and not payment.void and payment.refunds is not None:
                refunded[payment.refunds] = refunded.get(payment.refunds, 0) - payment.amount
        return figures

    def with_splits(
        self, account: Account, splits: Iterable[tuple[str, str | None, str | None, Cents]]
    ) -> AccountFigures:
        """The figures of ``account``: this figures' account with ``splits`` (payment,
        charge, installment, amount) appended at the end of its splits, and perhaps
        credit annotations set; nothing else changed. Equal to ``AccountFigures.of(account)``
        without reading the whole account again (``paysplit batch``, between payments).
        """
        figures = AccountFigures(
            account=account,
            installments=self.installments,
            split_total_by_charge=dict(self.split_total_by_charge),
            insurance_split_total_by_charge=dict(self.insurance_split_total_by_charge),
            split_total_by_installment=dict(self.split_total_by_installment),
            split_total_by_payment=dict(self.split_total_by_payment),
            adjustment_total_by_charge=self.adjustment_total_by_charge,
            refunded_by_payment=self.refunded_by_payment,
            unattached_adjustments=self.unattached_adjustments,
            _charges=self._charges,  # (the charges are the same; payments may be annotated)
        )
        payments = figures.payments
        by_charge = figures.split_total_by_charge
        insurance_by_charge = figures.insurance_split_total_by_charge
        by_installment = figures.split_total_by_installment
        by_payment = figures.split_total_by_payment
        for payment_id, charge, installment, amount in splits:
            payment = payments.get(payment_id)
            if payment is None or payment.void:
                continue
            by_payment[payment_id] = by_payment.get(payment_id, 0) + amount
            if charge is not None:
                by_charge[charge] = by_charge.get(charge, 0) + amount
                if payment.payer == "insurance":
                    insurance_by_charge[charge] = insurance_by_charge.get(charge, 0) + amount
            if installment is not None:
                by_installment[installment] = by_installment.get(installment, 0) + amount
        return figures

    # -- charges -----------------------------------------------------------
    def balance(self, charge: Charge) -> Cents:
        """amount + attached adjustments - all splits to the charge."""
        return (
            charge.amount
            + self.adjustment_total_by_charge.get(charge.id, 0)
            - self.split_total_by_charge.get(charge.id, 0)
        )

    def patient_balance(self, charge: Charge) -> Cents:
        """What the patient still owes: max(0, balance - insurance estimate)."""
        return max(0, self.balance(charge) - charge.insurance_estimate)

    def allocatable(self, charge: Charge, payer: str) -> Cents:
        """What a payment from this payer may still put on the charge (never negative)."""
        if payer == "insurance":
            return max(0, self.balance(charge))
        return self.patient_balance(charge)

    def responsibility(self, charge: Charge) -> Cents:
        """The patient's part of one charge, for the dashboard (000)."""
        return max(
            0,
            charge.amount
            + self.adjustment_total_by_charge.get(charge.id, 0)
            - self.insurance_split_total_by_charge.get(charge.id, 0)
            - charge.insurance_estimate,
        )

    # -- installments ------------------------------------------------------
    def installment_balance(self, installment: Installment) -> Cents:
        return installment.amount - self.split_total_by_installment.get(installment.id, 0)

    # -- payments ----------------------------------------------------------
    def allocated(self, payment: Payment) -> Cents:
        return 0 if payment.void else self.split_total_by_payment.get(payment.id, 0)

    def refunded(self, payment: Payment) -> Cents:
        return 0 if payment.void else self.refunded_by_payment.get(payment.id, 0)

    def unallocated(self, payment: Payment) -> Cents:
        """amount - allocated - refunded; 0 for a void payment or a refund (001)."""
        if payment.void or payment.type == "refund":
            return 0
        return payment.amount - self.allocated(payment) - self.refunded(payment)

    def credit_due_to_patient(self, payment: Payment) -> Cents:
        """The part of the payment's unallocated amount that is patient-side credit."""
        if payment.void or payment.type == "refund":
            return 0
        if payment.credit is not None:
            due_to = payment.credit.due_to
        else:
            due_to = "patient" if payment.payer == "patient" else "insurance"
        return self.unallocated(payment) if due_to == "patient" else 0


def dependents_of(account: Account, patient_id: str) -> list[str]:
    """Patients of the account who name ``patient_id`` as their guarantor, in ledger order."""
    return [p.id for p in account.patients if p.guarantor == patient_id]


def guarantor_of(account: Account, patient_id: str) -> str | None:
    return next((p.guarantor for p in account.patients if p.id == patient_id), None)
