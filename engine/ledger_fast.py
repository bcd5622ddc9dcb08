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
from collections.abc import Iterable, Iterator
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
_PROVIDER = attrgetter("provider")
_GIVEN = functools.partial(is_not, None)
"""Keeps the references given: not None (an empty text is a reference, and must resolve)."""


def _ids(records: Iterable[Any]) -> set[str] | None:
    """The ids of ``records``; None when one is used twice."""
    listed = list(map(_ID, records))
    found = set(listed)
    return found if len(found) == len(listed) else None


def _given(field: str, *groups: Iterable[Any]) -> Iterator[str]:
    """The references ``field`` holds in the records of ``groups``, where it is not None."""
    return filter(_GIVEN, map(attrgetter(field), itertools.chain(*groups)))


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
    appointments, charges = account.appointments, account.charges
    adjustments, payments = account.adjustments, account.payments
    plans, splits = account.plans, account.splits

    patient_ids = _ids(account.patients)
    appointment_ids = _ids(appointments)
    charge_ids = _ids(charges)
    payment_ids = _ids(payments)
    split_ids = _ids(splits)
    if (
        patient_ids is None
        or appointment_ids is None
        or charge_ids is None
        or payment_ids is None
        or split_ids is None
        or _ids(adjustments) is None
        or _ids(plans) is None
        or _ids(installments) is None
    ):
        return False

    for patient in account.patients:
        guarantor = patient.guarantor  # a patient of the account, not the patient
        if guarantor is not None and (guarantor == patient.id or guarantor not in patient_ids):
            return False
    if not (
        patient_ids.issuperset(
            map(_PATIENT, itertools.chain(appointments, charges, adjustments, payments, plans))
        )
        and practice.provider_set.issuperset(map(_PROVIDER, charges))
        and practice.provider_set.issuperset(
            _given("provider", appointments, adjustments, payments, credits)
        )
        and practice.office_set.issuperset(
            _given("office", appointments, charges, adjustments, payments, credits)
        )
        and appointment_ids.issuperset(_given("appointment", charges, payments))
        and charge_ids.issuperset(_given("charge", adjustments, splits))
        and charge_ids.issuperset(itertools.chain.from_iterable(p.charges for p in plans))
        and payment_ids.issuperset(map(attrgetter("payment"), splits))
        and split_ids.issuperset(_given("reverses", splits))
    ):
        return False

    for adjustment in adjustments:
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
                or refunds not in payment_ids
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
