"""The ledger document (format ``paysplit-ledger/1``) as frozen pydantic models.

This module owns the shape of every record exactly as ``docs/ledger.md``
describes it: field names, optional fields and their defaults, and the rule
that unknown fields are refused except under an ``extra`` object, which is
kept untouched. Records are immutable and held in tuples, so the order a
ledger was read in is the order it is written in; an operation produces a
new ledger instead of changing one. Loading with every problem reported,
reference checks and atomic writing live in :mod:`paysplit.ledger_io`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import sys
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NaiveDatetime,
    PlainValidator,
    StrictBool,
)
from pydantic_core import PydanticCustomError, core_schema

from paysplit.money import Amount, Cents, JsonInt, JsonMode, JsonNumber

FORMAT = "paysplit-ledger/1"

Payer = Literal["patient", "insurance"]
PaymentType = Literal["payment", "refund"]


def _no_extra(value: object) -> bool:
    return value is None


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
"""``YYYY-MM-DD`` in the digits 0-9 (``\\d`` would let other scripts' digits through)."""
EXTRA_MAX_DEPTH = 32
"""How deeply an ``extra`` object may nest: deeper is a mistake, not practice data."""


def parse_day(text: str) -> dt.date:
    """A date written ``YYYY-MM-DD`` (a command-line option); ``ValueError`` otherwise.

    Stricter than :meth:`datetime.date.fromisoformat`, which also reads ``20250101`` and
    week dates: a date is written the one way a ledger writes it.
    """
    if not _DAY.fullmatch(text):
        raise ValueError(f"{text!r} is not a date (write YYYY-MM-DD)")
    return dt.date.fromisoformat(text)


def _day(value: object) -> object:
    """Let only ``YYYY-MM-DD`` text (or a date) through to the date parser.

    pydantic would read the number 86400 as 1970-01-02 and a date-time as a
    date; a ledger must not turn a typo into a date silently.
    """
    if isinstance(value, str) and not isinstance(value, JsonNumber):
        if _DAY.fullmatch(value.strip()):
            return value.strip()
        raise PydanticCustomError("day_format", "write dates as YYYY-MM-DD")
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    raise PydanticCustomError("day_format", "write dates as YYYY-MM-DD")


def _moment(value: object) -> object:
    """Refuse numbers where a time is expected (pydantic would read them as Unix times)."""
    if isinstance(value, JsonNumber | int | float) and not isinstance(value, bool):
        raise PydanticCustomError("moment_format", "write times as YYYY-MM-DDTHH:MM:SS")
    return value


def _extra_data(value: object) -> dict[str, Any]:
    """Check that ``extra`` holds JSON values and keep it exactly as read.

    Numbers stay as they were written (a :class:`~paysplit.money.JsonNumber`
    keeps its text), so writing the ledger back gives the practice system its
    own data untouched. Checked without recursion, to a bounded depth.
    """
    if not isinstance(value, Mapping):
        raise PydanticCustomError("extra_type", "extra must be an object")
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, Mapping):
            children: Any = node.values()
            if any(not isinstance(key, str) for key in node):
                raise PydanticCustomError("extra_value", "keys in extra must be text")
        elif isinstance(node, list | tuple):
            children = node
        elif node is None or isinstance(node, str | bool | int):
            continue
        elif isinstance(node, float) and math.isfinite(node):
            continue  # only reachable from YAML or Python callers; never money
        else:
            raise PydanticCustomError(
                "extra_value",
                "extra holds JSON values only (text, numbers, true/false, null, lists, objects)",
            )
        if depth > EXTRA_MAX_DEPTH:
            raise PydanticCustomError(
                "extra_depth", f"extra is nested more than {EXTRA_MAX_DEPTH} levels deep"
            )
        pending.extend((child, depth + 1) for child in children)
    return value if type(value) is dict else dict(value)


def _json_extra(value: object) -> dict[str, Any]:
    """``extra`` as ``model_validate_json`` hands it over (the fast reader's JSON mode).

    Integers become :class:`~paysplit.money.JsonInt`, as the ledger reader makes them. A
    number with a fraction or an exponent arrives as a float, its text already lost, so it
    is refused here: the ledger reader, which keeps it as a
    :class:`~paysplit.money.JsonNumber`, decides about it. Same depth rule as
    :func:`_extra_data`; the values are the reader's own, converted in place.
    """
    if type(value) is not dict:
        raise PydanticCustomError("extra_type", "extra must be an object")
    pending: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > EXTRA_MAX_DEPTH:
            raise PydanticCustomError(
                "extra_depth", f"extra is nested more than {EXTRA_MAX_DEPTH} levels deep"
            )
        items: Any = node.items() if type(node) is dict else enumerate(node)
        for key, child in items:
            kind = type(child)
            if kind is str or kind is bool or child is None:
                continue
            if kind is int:
                node[key] = _json_int(child)
            elif kind is dict or kind is list:
                pending.append((child, depth + 1))
            else:
                raise PydanticCustomError(
                    "extra_json_number",
                    "a number with a fraction or an exponent in extra is read by the ledger "
                    "reader, which keeps its text",
                )
    return value


_SMALL_INT = 10**18


def _json_int(value: int) -> JsonInt:
    """A JSON integer as the ledger reader makes it; one of more digits than Python converts
    from text (``sys.get_int_max_str_digits``) is kept as its text there, so refused here."""
    if not -_SMALL_INT < value < _SMALL_INT:
        limit = sys.get_int_max_str_digits()
        if limit and abs(value) >= 10**limit:
            raise PydanticCustomError(
                "extra_json_number", "an integer this long is kept as its text by the reader"
            )
    return JsonInt(value)


def _text(value: object) -> object:
    """Refuse a JSON number where text is expected, as pydantic refuses ``15``.

    The JSON reader hands ``1.5`` (and a number of thousands of digits) over as a
    :class:`~paysplit.money.JsonNumber`, which is a ``str`` so that amounts keep their exact
    text; without this check ``{"id": 1.5}`` would load as the id ``"1.5"``.
    """
    if isinstance(value, JsonNumber):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    return value


# Each type below has its own schema for JSON mode (``model_validate_json``, the fast reader
# of paysplit.ledger_fast), checked in pydantic-core without a Python call where it can be;
# Python mode (``model_validate``) is what the validators before ``JsonMode`` make it. The
# JSON schemas may refuse more (the reader then takes the slow path), never accept more.
Text = Annotated[str, BeforeValidator(_text), JsonMode(core_schema.str_schema())]
"""A text field: a JSON string, never a JSON number (``15`` and ``1.5`` alike are refused)."""
Day = Annotated[
    dt.date,
    BeforeValidator(_day),
    JsonMode(
        core_schema.chain_schema(
            [
                # No spaces around the date here (Python mode strips them).
                core_schema.str_schema(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
                core_schema.date_schema(),
            ]
        )
    ),
]
"""A calendar date written ``YYYY-MM-DD``."""
Moment = Annotated[
    NaiveDatetime,
    BeforeValidator(_moment),
    JsonMode(
        core_schema.chain_schema(
            [core_schema.str_schema(), core_schema.datetime_schema(tz_constraint="naive")]
        )
    ),
]
"""A local date and time, ISO 8601 without a zone."""
ExtraData = Annotated[
    dict[str, Any],
    PlainValidator(_extra_data),
    JsonMode(core_schema.no_info_plain_validator_function(_json_extra)),
]
"""Practice-system data under ``extra``: any JSON object, kept as read."""


class Record(BaseModel):
    """Base of every ledger record: frozen, strict about unknown fields."""

    # cache_strings="keys": pydantic-core's default looks every text value of a JSON
    # line up in its string cache; a ledger's values are mostly ids seen once, and the
    # lookups cost 10-12% of reading an account (docs/performance.md, round 5).
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, cache_strings="keys"
    )

    extra: ExtraData | None = Field(default=None, exclude_if=_no_extra)
    """Practice-system data paysplit keeps as it is and never reads."""


class Practice(Record):
    name: Text
    currency: Text
    as_of: Day | None = None
    """The ledger's own run date; None means today (resolved by the caller)."""


class Provider(Record):
    id: Text
    name: Text = ""


class Office(Record):
    id: Text
    name: Text = ""


class Patient(Record):
    id: Text
    name: Text = ""
    guarantor: Text | None = None
    """The patient (same account) this patient is a dependent of."""


class Appointment(Record):
    id: Text
    patient: Text
    provider: Text | None = None
    office: Text | None = None
    start: Moment | None = None


class Charge(Record):
    """Production: a procedure, a debit (fee) or a positive adjustment."""

    id: Text
    patient: Text
    provider: Text
    office: Text | None = None
    appointment: Text | None = None
    date: Day
    code: Text = ""
    kind: Text = "procedure"
    amount: Amount
    status: Text
    insurance_estimate: Amount = 0


class Adjustment(Record):
    """Attached to a charge (any sign), or unattached and negative (an account credit)."""

    id: Text
    patient: Text
    provider: Text | None = None
    office: Text | None = None
    date: Day | None = None
    amount: Amount
    charge: Text | None = None
    memo: Text = ""


class CreditNote(Record):
    """The credit annotation a leftover action sets on a payment (004)."""

    due_to: Payer
    memo: Text = "Account credit"
    provider: Text | None = None
    office: Text | None = None


class Payment(Record):
    """Money in (type ``payment``) or out (type ``refund``, negative amount)."""

    id: Text
    patient: Text
    payer: Payer
    provider: Text | None = None
    office: Text | None = None
    date: Day
    method: Text = ""
    type: PaymentType
    amount: Amount
    unearned_type: Text | None = None
    """None means the rules' ``default unearned type``, else ``prepayment``."""
    appointment: Text | None = None
    memo: Text = ""
    void: StrictBool = False
    refunds: Text | None = None
    credit: CreditNote | None = None


class Installment(Record):
    id: Text
    due: Day
    amount: Amount


class PaymentPlan(Record):
    id: Text
    patient: Text
    charges: tuple[Text, ...] = ()
    installments: tuple[Installment, ...] = ()


class Split(Record):
    """Part of one payment moved to one charge (optionally via an installment)."""

    id: Text
    payment: Text
    charge: Text | None = None
    installment: Text | None = None
    amount: Amount
    date: Day | None = None
    transfer: Text | None = None
    reverses: Text | None = None
    rule: Text | None = None


class HistoryEntry(Record):
    """One applied plan, appended by paysplit and never rewritten."""

    operation: Text
    rule: Text | None = None
    rules_digest: Text | None = None
    plugins: dict[str, Text] = Field(default_factory=dict)
    applied_at: Text
    splits: tuple[Text, ...] = ()
    payments: tuple[Text, ...] = ()
    voids: tuple[Text, ...] = ()
    charges: tuple[Text, ...] = ()
    credits: tuple[Text, ...] = ()


class Account(Record):
    """A family or guarantor account: allocation never crosses one."""

    id: Text
    patients: tuple[Patient, ...]
    appointments: tuple[Appointment, ...] = ()
    charges: tuple[Charge, ...] = ()
    adjustments: tuple[Adjustment, ...] = ()
    payments: tuple[Payment, ...] = ()
    plans: tuple[PaymentPlan, ...] = ()
    splits: tuple[Split, ...] = ()


class LedgerHeader(Record):
    """Everything in a ledger but its accounts: the first line of a JSON Lines ledger."""

    format: Literal["paysplit-ledger/1"]
    practice: Practice
    providers: tuple[Provider, ...]
    offices: tuple[Office, ...] = ()
    history: tuple[HistoryEntry, ...] = ()


class Ledger(LedgerHeader):
    """A whole ledger document."""

    accounts: tuple[Account, ...]

    def header(self) -> LedgerHeader:
        fields: dict[str, Any] = {name: getattr(self, name) for name in LedgerHeader.model_fields}
        return LedgerHeader.model_construct(**fields)

    def account(self, account_id: str) -> Account | None:
        return next((a for a in self.accounts if a.id == account_id), None)

    def run_date(self) -> dt.date:
        """The date rules run as of: the practice's ``as_of``, else today."""
        return self.practice.as_of or dt.date.today()


def installment_total(plan: PaymentPlan) -> Cents:
    return sum(i.amount for i in plan.installments)
