"""The fast way to read an account line that is valid: one pydantic-core call, one pass.

:func:`fast_account` owns the shortcut that ``paysplit batch`` takes for almost every
line of a JSON Lines ledger: ``Account.model_validate_json`` parses and validates the
line in pydantic-core (each field's JSON-mode schema in :mod:`paysplit.ledger` and
:mod:`paysplit.money`), then two checks replace what the exact reader
(:mod:`paysplit.ledger_json`) and the reference pass (:mod:`paysplit.ledger_refs`) would
find: no key is given twice, and every id and reference is sound. It answers only "this
line is valid, here is its account" or "don't know" (``None``); on ``None``,
:func:`paysplit.ledger_io.account_from_line` reads the line the exact way, which accepts
or reports it precisely as before. So the shortcut may refuse more than the exact
reader accepts (a number with a fraction or an exponent in an amount or in ``extra``,
an escape in a string, spaces around a date, ...), never accept a line it refuses, and
never give another value.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from operator import attrgetter, is_not
from typing import Any

from pydantic import ValidationError

from paysplit.ledger import Account, CreditNote, Installment, Record
from paysplit.ledger_refs import Practice

__all__ = ["fast_account"]

_BOM = b"\xef\xbb\xbf"


def fast_account(raw: bytes | str, practice: Practice, *, max_bytes: int) -> Account | None:
    """The account of a valid account line, or None when the line needs the exact reader.

    ``raw`` is the line without its line break; ``practice`` the header's providers and
    offices. None for a line longer than ``max_bytes`` (pydantic could make as many errors
    as it has values), with a backslash (an escape: the key count below needs every ``"``
    to be a string's start or end, and lone surrogates need the exact reader) or a byte
    order mark, one pydantic refuses, one with a key given twice, or one with any problem
    of ids, references or the rules of the document.
    """
    if isinstance(raw, str):
        try:
            raw = raw.encode("utf-8")
        except UnicodeEncodeError:
            return None
    if len(raw) > max_bytes or b"\\" in raw or raw.startswith(_BOM):
        return None
    try:
        account = Account.model_validate_json(raw)
    except ValidationError:
        return None
    credits = [p.credit for p in account.payments if p.credit is not None]
    installments = [i for plan in account.plans for i in plan.installments]
    records = [
        account,
        *account.patients,
        *account.appointments,
        *account.charges,
        *account.adjustments,
        *account.payments,
        *credits,
        *account.plans,
        *installments,
        *account.splits,
    ]
    if _keys_in(raw) != _keys_read(records):
        return None
    if not _references_sound(account, practice, credits, installments):
        return None
    return account


# --------------------------------------------------------------------------
# No key given twice
# --------------------------------------------------------------------------
def _keys_in(raw: bytes) -> int:
    """How many keys the line holds, duplicates included.

    Without a backslash in the line every ``"`` starts or ends a string, and a key is a
    string followed by optional whitespace and ``:``; with the whitespace taken out, every
    key is one ``":``. A text value that starts with a colon (``": x"``) counts too: the
    line then takes the exact reader, which is only slower.
    """
    return raw.translate(None, b" \t\r\n").count(b'":')


_FIELDS_SET = attrgetter("__pydantic_fields_set__")
_EXTRA = attrgetter("extra")


def _keys_read(records: list[Record]) -> int:
    """How many keys pydantic kept in ``records`` (every record of the account, nested
    ones included): the fields each was given (null ones too) and every key in ``extra``.
    pydantic keeps the last of two equal keys, so this is less than :func:`_keys_in`
    exactly when a key was given twice."""
    count = sum(map(len, map(_FIELDS_SET, records)))
    pending: list[Any] = [extra for extra in map(_EXTRA, records) if extra is not None]
    while pending:
        node = pending.pop()
        if type(node) is dict:
            count += len(node)
            node = node.values()
        pending.extend(v for v in node if type(v) is dict or type(v) is list)
    return count


# --------------------------------------------------------------------------
# Ids and references, on the validated account
# --------------------------------------------------------------------------
_ID = attrgetter("id")
_PATIENT = attrgetter("patient")
_GIVEN = functools.partial(is_not, None)
"""Keeps the references given: not None (an empty text is a reference, and must resolve)."""

# Every field of a kind that an id or a reference is in, read in one call per record: a
# charge is read once, not once per check (22 charges an account is the common case).
_APPOINTMENT_REFS = attrgetter("id", "patient", "provider", "office")
_CHARGE_REFS = attrgetter("id", "patient", "provider", "office", "appointment")
_ADJUSTMENT_REFS = attrgetter("id", "patient", "provider", "office", "charge")
_PAYMENT_REFS = attrgetter("id", "patient", "provider", "office", "appointment")
_SPLIT_REFS = attrgetter("id", "payment", "charge", "reverses")
_CREDIT_REFS = attrgetter("provider", "office")


def _columns(fields: attrgetter[Any], records: Sequence[Any], width: int) -> list[tuple[Any, ...]]:
    """The values ``fields`` reads from ``records``, a tuple per field (``width`` fields)."""
    if not records:
        return [()] * width
    return list(zip(*map(fields, records), strict=True))


def _unique(ids: Sequence[str]) -> set[str] | None:
    """``ids`` as a set; None when one is used twice."""
    found = set(ids)
    return found if len(found) == len(ids) else None


def _references_sound(
    account: Account,
    practice: Practice,
    credits: list[CreditNote],
    installments: list[Installment],
) -> bool:
    """True when :class:`paysplit.ledger_refs.AccountCheck` would find no problem in the
    account (``credits`` and ``installments`` are its payments' and plans'): ids unique
    per kind (installments across the account's plans), every reference resolving, and
    the rules of the document. The same checks, on typed records instead of the raw
    document; False says only "ask the exact pass"."""
    if practice.providers is None or practice.offices is None:
        return False  # the header's lists were unusable: the exact pass knows what to skip
    payments, plans, splits = account.payments, account.plans, account.splits
    appointment_ids, appointment_patients, appointment_providers, appointment_offices = _columns(
        _APPOINTMENT_REFS, account.appointments, 4
    )
    charge_ids, charge_patients, charge_providers, charge_offices, charge_appointments = _columns(
        _CHARGE_REFS, account.charges, 5
    )
    (
        adjustment_ids,
        adjustment_patients,
        adjustment_providers,
        adjustment_offices,
        adjustment_charges,
    ) = _columns(_ADJUSTMENT_REFS, account.adjustments, 5)
    payment_ids, payment_patients, payment_providers, payment_offices, payment_appointments = (
        _columns(_PAYMENT_REFS, payments, 5)
    )
    split_ids, split_payments, split_charges, split_reverses = _columns(_SPLIT_REFS, splits, 4)
    credit_providers, credit_offices = _columns(_CREDIT_REFS, credits, 2)

    patient_set = _unique(list(map(_ID, account.patients)))
    appointment_set = _unique(appointment_ids)
    charge_set = _unique(charge_ids)
    payment_set = _unique(payment_ids)
    split_set = _unique(split_ids)
    if (
        patient_set is None
        or appointment_set is None
        or charge_set is None
        or payment_set is None
        or split_set is None
        or _unique(adjustment_ids) is None
        or _unique(list(map(_ID, plans))) is None
        or _unique(list(map(_ID, installments))) is None
    ):
        return False

    for patient in account.patients:
        guarantor = patient.guarantor  # a patient of the account, not the patient
        if guarantor is not None and (guarantor == patient.id or guarantor not in patient_set):
            return False
    chain = itertools.chain
    if not (
        patient_set.issuperset(
            chain(
                appointment_patients,
                charge_patients,
                adjustment_patients,
                payment_patients,
                map(_PATIENT, plans),
            )
        )
        and practice.provider_set.issuperset(charge_providers)
        and practice.provider_set.issuperset(
            filter(
                _GIVEN,
                chain(
                    appointment_providers, adjustment_providers, payment_providers, credit_providers
                ),
            )
        )
        and practice.office_set.issuperset(
            filter(
                _GIVEN,
                chain(
                    appointment_offices,
                    charge_offices,
                    adjustment_offices,
                    payment_offices,
                    credit_offices,
                ),
            )
        )
        and appointment_set.issuperset(
            filter(_GIVEN, chain(charge_appointments, payment_appointments))
        )
        and charge_set.issuperset(filter(_GIVEN, chain(adjustment_charges, split_charges)))
        and charge_set.issuperset(itertools.chain.from_iterable(p.charges for p in plans))
        and payment_set.issuperset(split_payments)
        and split_set.issuperset(filter(_GIVEN, split_reverses))
    ):
        return False

    for adjustment in account.adjustments:
        if adjustment.charge is None and adjustment.amount >= 0:
            return False  # only a credit (negative) may stay unattached
    for payment in payments:
        refunds = payment.refunds
        if payment.type == "refund":
            # Negative, naming a payment of the account that is not itself a refund.
            if (
                payment.amount >= 0
                or refunds is None
                or refunds == payment.id
                or refunds not in payment_set
            ):
                return False
            if next(p for p in payments if p.id == refunds).type == "refund":
                return False
        elif payment.amount < 0 or refunds is not None:
            return False
    if splits:
        plan_of = {i.id: plan for plan in plans for i in plan.installments}
        for split in splits:
            if split.installment is None:
                if split.charge is None:
                    return False  # a split names the charge or the installment it pays
                continue
            plan = plan_of.get(split.installment)
            # A split to an installment names one of its plan's charges.
            if plan is None or split.charge is None or split.charge not in plan.charges:
                return False
    return True
