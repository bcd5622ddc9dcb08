"""The linear pass over a raw ledger document: ids, references, rules of the document.

What pydantic cannot check, checked on the parsed JSON in one pass, even where the
shape is wrong elsewhere (so one load reports every problem): ids unique within their
kind across the document (:class:`Ids`), every reference resolving inside the right
account or to the practice's providers and offices (:class:`AccountCheck`), and the
rules of ``docs/ledger.md`` (a refund is negative and names a payment that is not a
refund, a positive unattached adjustment is production, a split names what it pays and
an installment split one of its plan's charges, ...).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from paysplit.ledger_problems import Found, Loc, path_text
from paysplit.money import JsonNumber, MoneyError, format_cents, parse_amount


# --------------------------------------------------------------------------
# The linear pass: ids, references and the rules of the document
# --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Practice:
    """What accounts may refer to outside themselves: the header's providers and offices.

    ``None`` when the list itself is unusable (already reported): references to it are
    then not checked, rather than each reported as dangling.
    """

    providers: tuple[str, ...] | None
    offices: tuple[str, ...] | None
    provider_set: frozenset[str]
    office_set: frozenset[str]

    @classmethod
    def of(cls, providers: Iterable[str] | None, offices: Iterable[str] | None) -> Practice:
        p = None if providers is None else tuple(providers)
        o = None if offices is None else tuple(offices)
        return cls(p, o, frozenset(p or ()), frozenset(o or ()))


def _is_text(value: object) -> TypeGuard[str]:
    """A JSON string: an id or a reference may be one (a :class:`JsonNumber` is a ``str``
    that was written as a number, refused by the schema and no id here)."""
    return isinstance(value, str) and not isinstance(value, JsonNumber)


def _id(value: str) -> str:
    """An id as a message shows it: as written, or in quotes when it would not read as one
    (empty, spaces around it, characters that do not print)."""
    if value and value.strip() == value and value.isprintable():
        return value
    return json.dumps(value, ensure_ascii=False)


def _listed(ids: tuple[str, ...]) -> str:
    if not ids:
        return "none are listed"
    shown = ", ".join(ids[:8])
    return shown + (", ..." if len(ids) > 8 else "")


class Ids:
    """Ids seen so far, by kind, with where each was first used (unique across the document)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.first: dict[str, dict[str, Loc]] = {}

    def add(self, kind: str, value: object, loc: Loc, found: list[Found]) -> None:
        if not _is_text(value):
            return
        seen = self.first.setdefault(kind, {})
        where = seen.setdefault(value, loc)
        if where is not loc:  # the path is only spelled out for a duplicate
            found.append(
                Found(loc, f"{_id(value)} is used twice (also at {path_text(self.prefix, where)})")
            )


def records(container: Mapping[str, Any], key: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """The records of a list field that are objects; anything else was reported by the schema."""
    items = container.get(key)
    if isinstance(items, list | tuple):
        for index, record in enumerate(items):
            if isinstance(record, Mapping):
                yield index, record


def _amount_of(record: Mapping[str, Any]) -> int | None:
    try:
        return parse_amount(record.get("amount"))
    except MoneyError:
        return None  # already reported by the schema check


def check_header(doc: Mapping[str, Any], ids: Ids, found: list[Found]) -> Practice:
    lists: dict[str, list[str] | None] = {}
    for key, kind in (("providers", "provider"), ("offices", "office")):
        raw = doc.get(key, [] if key == "offices" else None)
        if not isinstance(raw, list | tuple):
            lists[key] = None
            continue
        listed: list[str] = []
        for index, record in records(doc, key):
            value = record.get("id")
            ids.add(kind, value, (key, index, "id"), found)
            if _is_text(value):
                listed.append(value)
        lists[key] = listed
    return Practice.of(lists["providers"], lists["offices"])


_ACCOUNT_LISTS = (
    ("patients", "patient"),
    ("appointments", "appointment"),
    ("charges", "charge"),
    ("adjustments", "adjustment"),
    ("payments", "payment"),
    ("plans", "plan"),
    ("splits", "split"),
)


class AccountCheck:
    """References and document rules inside one account, on the raw document."""

    def __init__(
        self, account: Mapping[str, Any], at: Loc, practice: Practice, found: list[Found]
    ) -> None:
        self.account = account
        self.at = at
        self.practice = practice
        self.found = found
        name = account.get("id")
        self.name = f"account {_id(name)}" if _is_text(name) else "this account"
        self.local: dict[str, dict[str, Mapping[str, Any]]] = {k: {} for _, k in _ACCOUNT_LISTS}
        self.plan_of_installment: dict[str, Mapping[str, Any]] = {}

    def collect(self, ids: Ids) -> None:
        ids.add("account", self.account.get("id"), (*self.at, "id"), self.found)
        for key, kind in _ACCOUNT_LISTS:
            table = self.local[kind]
            for index, record in records(self.account, key):
                value = record.get("id")
                ids.add(kind, value, (*self.at, key, index, "id"), self.found)
                if _is_text(value):
                    table.setdefault(value, record)
        for p_index, plan in records(self.account, "plans"):
            for i_index, installment in records(plan, "installments"):
                value = installment.get("id")
                loc = (*self.at, "plans", p_index, "installments", i_index, "id")
                ids.add("installment", value, loc, self.found)
                if _is_text(value):
                    self.plan_of_installment.setdefault(value, plan)

    # -- helpers -------------------------------------------------------------
    def problem(self, loc: Loc, message: str, shown_at: Loc | None = None) -> None:
        self.found.append(Found(loc, message, shown_at))

    def local_ref(self, record: Mapping[str, Any], loc: Loc, key: str, kind: str) -> str | None:
        """Check that ``record[key]`` names a ``kind`` of this account; return it when it does."""
        value = record.get(key)
        if not _is_text(value):
            return None
        if value not in self.local[kind]:
            article = "an" if kind[0] in "aeiou" else "a"
            self.problem((*loc, key), f"{_id(value)} is not {article} {kind} of {self.name}")
            return None
        return value

    def practice_ref(self, record: Mapping[str, Any], loc: Loc, key: str) -> None:
        value = record.get(key)
        if not _is_text(value):
            return
        practice = self.practice
        if key == "provider":
            if practice.providers is not None and value not in practice.provider_set:
                listed = _listed(practice.providers)
                self.problem(
                    (*loc, key), f"{_id(value)} is not one of the practice's providers ({listed})"
                )
        elif practice.offices is not None and value not in practice.office_set:
            listed = _listed(practice.offices)
            self.problem(
                (*loc, key), f"{_id(value)} is not one of the practice's offices ({listed})"
            )

    # -- the records ---------------------------------------------------------
    def check(self) -> None:
        acc = self.account
        for index, patient in records(acc, "patients"):
            self.patient(patient, (*self.at, "patients", index))
        for index, appointment in records(acc, "appointments"):
            loc = (*self.at, "appointments", index)
            self.local_ref(appointment, loc, "patient", "patient")
            self.practice_ref(appointment, loc, "provider")
            self.practice_ref(appointment, loc, "office")
        for index, charge in records(acc, "charges"):
            loc = (*self.at, "charges", index)
            self.local_ref(charge, loc, "patient", "patient")
            self.practice_ref(charge, loc, "provider")
            self.practice_ref(charge, loc, "office")
            self.local_ref(charge, loc, "appointment", "appointment")
        for index, adjustment in records(acc, "adjustments"):
            self.adjustment(adjustment, (*self.at, "adjustments", index))
        for index, payment in records(acc, "payments"):
            self.payment(payment, (*self.at, "payments", index))
        for index, plan in records(acc, "plans"):
            loc = (*self.at, "plans", index)
            self.local_ref(plan, loc, "patient", "patient")
            charges = plan.get("charges")
            if isinstance(charges, list | tuple):
                for c_index, charge_id in enumerate(charges):
                    if _is_text(charge_id) and charge_id not in self.local["charge"]:
                        self.problem(
                            (*loc, "charges", c_index),
                            f"{_id(charge_id)} is not a charge of {self.name}",
                        )
        for index, split in records(acc, "splits"):
            self.split(split, (*self.at, "splits", index))

    def patient(self, patient: Mapping[str, Any], loc: Loc) -> None:
        guarantor = patient.get("guarantor")
        if not _is_text(guarantor):
            return
        if guarantor == patient.get("id"):
            self.problem((*loc, "guarantor"), "a patient cannot be their own guarantor")
        elif guarantor not in self.local["patient"]:
            self.problem(
                (*loc, "guarantor"),
                f"{_id(guarantor)} is not a patient of {self.name} "
                "(a guarantor is a patient of the same account)",
            )

    def adjustment(self, adjustment: Mapping[str, Any], loc: Loc) -> None:
        self.local_ref(adjustment, loc, "patient", "patient")
        self.practice_ref(adjustment, loc, "provider")
        self.practice_ref(adjustment, loc, "office")
        self.local_ref(adjustment, loc, "charge", "charge")
        amount = _amount_of(adjustment)
        if adjustment.get("charge") is None and amount is not None and amount >= 0:
            if amount > 0:
                message = (
                    f"an unattached adjustment of {format_cents(amount)} is production, not a "
                    'credit: enter it as a charge of kind "adjustment" (only a negative '
                    "adjustment may stay unattached)"
                )
            else:
                message = (
                    "an unattached adjustment of 0.00 changes nothing: attach it to a charge "
                    "or remove it"
                )
            self.problem((*loc, "amount"), message)

    def payment(self, payment: Mapping[str, Any], loc: Loc) -> None:
        self.local_ref(payment, loc, "patient", "patient")
        self.practice_ref(payment, loc, "provider")
        self.practice_ref(payment, loc, "office")
        self.local_ref(payment, loc, "appointment", "appointment")
        credit = payment.get("credit")
        if isinstance(credit, Mapping):
            self.practice_ref(credit, (*loc, "credit"), "provider")
            self.practice_ref(credit, (*loc, "credit"), "office")
        amount = _amount_of(payment)
        kind = payment.get("type")
        refunds = payment.get("refunds")
        if kind == "refund":
            if amount is not None and amount >= 0:
                self.problem(
                    (*loc, "amount"),
                    f"a refund has a negative amount (the money paid back), not "
                    f"{format_cents(amount)}",
                )
            if refunds is None:
                self.problem(
                    (*loc, "refunds"), 'a refund names the payment it refunds in "refunds"'
                )
            elif _is_text(refunds):
                if refunds == payment.get("id"):
                    self.problem((*loc, "refunds"), "a refund cannot refund itself")
                elif (
                    self.local_ref(payment, loc, "refunds", "payment") is not None
                    and self.local["payment"][refunds].get("type") == "refund"
                ):
                    self.problem(
                        (*loc, "refunds"),
                        f"{_id(refunds)} is itself a refund; name the payment the money was "
                        "paid with",
                    )
        elif kind == "payment":
            if amount is not None and amount < 0:
                self.problem(
                    (*loc, "amount"),
                    f"a payment cannot be negative ({format_cents(amount)}); money paid back "
                    'is a payment of type "refund" that names the payment it refunds',
                )
            if refunds is not None:
                self.problem(
                    (*loc, "refunds"), 'only a refund (type "refund") names a payment in "refunds"'
                )

    def split(self, split: Mapping[str, Any], loc: Loc) -> None:
        self.local_ref(split, loc, "payment", "payment")
        self.local_ref(split, loc, "reverses", "split")
        charge = split.get("charge")
        installment = split.get("installment")
        if charge is None and installment is None:
            self.problem(
                (*loc, "charge"), "a split names the charge or the installment it pays", loc
            )
            return
        charge_ok = self.local_ref(split, loc, "charge", "charge")
        if not _is_text(installment):
            return
        plan = self.plan_of_installment.get(installment)
        if plan is None:
            self.problem(
                (*loc, "installment"),
                f"{_id(installment)} is not an installment of a payment plan of {self.name}",
            )
            return
        raw = plan.get("charges", [])
        if not isinstance(raw, list | tuple):
            return  # the plan's own problem is reported at the plan
        plan_charges = [c for c in raw if _is_text(c)]
        plan_id = plan.get("id")
        listed = ", ".join(plan_charges) or "it covers none"
        if charge is None:
            self.problem(
                (*loc, "charge"),
                f"a split to installment {installment} also names the charge of plan {plan_id} "
                f"that it pays ({listed})",
                loc,
            )
        elif charge_ok is not None and charge_ok not in plan_charges:
            self.problem(
                (*loc, "charge"),
                f"{_id(charge_ok)} is not one of plan {plan_id}'s charges ({listed}); a split to "
                f"installment {installment} pays one of them",
            )
