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
from pydantic_core import PydanticCustomError

from paysplit.money import Amount, Cents, JsonNumber

FORMAT = "paysplit-ledger/1"

Payer = Literal["patient", "insurance"]
PaymentType = Literal["payment", "refund"]


def _no_extra(value: object) -> bool:
    return value is None


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
EXTRA_MAX_DEPTH = 32
"""How deeply an ``extra`` object may nest: deeper is a mistake, not practice data."""


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


Day = Annotated[dt.date, BeforeValidator(_day)]
"""A calendar date written ``YYYY-MM-DD``."""
Moment = Annotated[NaiveDatetime, BeforeValidator(_moment)]
"""A local date and time, ISO 8601 without a zone."""
ExtraData = Annotated[dict[str, Any], PlainValidator(_extra_data)]
"""Practice-system data under ``extra``: any JSON object, kept as read."""


class Record(BaseModel):
    """Base of every ledger record: frozen, strict about unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    extra: ExtraData | None = Field(default=None, exclude_if=_no_extra)
    """Practice-system data paysplit keeps as it is and never reads."""


class Practice(Record):
    name: str
    currency: str
    as_of: Day | None = None
    """The ledger's own run date; None means today (resolved by the caller)."""


class Provider(Record):
    id: str
    name: str = ""


class Office(Record):
    id: str
    name: str = ""


class Patient(Record):
    id: str
    name: str = ""
    guarantor: str | None = None
    """The patient (same account) this patient is a dependent of."""


class Appointment(Record):
    id: str
    patient: str
    provider: str | None = None
    office: str | None = None
    start: Moment | None = None


class Charge(Record):
    """Production: a procedure, a debit (fee) or a positive adjustment."""

    id: str
    patient: str
    provider: str
    office: str | None = None
    appointment: str | None = None
    date: Day
    code: str = ""
    kind: str = "procedure"
    amount: Amount
    status: str
    insurance_estimate: Amount = 0


class Adjustment(Record):
    """Attached to a charge (any sign), or unattached and negative (an account credit)."""

    id: str
    patient: str
    provider: str | None = None
    office: str | None = None
    date: Day | None = None
    amount: Amount
    charge: str | None = None
    memo: str = ""


class CreditNote(Record):
    """The credit annotation a leftover action sets on a payment (004)."""

    due_to: Payer
    memo: str = "Account credit"
    provider: str | None = None
    office: str | None = None


class Payment(Record):
    """Money in (type ``payment``) or out (type ``refund``, negative amount)."""

    id: str
    patient: str
    payer: Payer
    provider: str | None = None
    office: str | None = None
    date: Day
    method: str = ""
    type: PaymentType
    amount: Amount
    unearned_type: str | None = None
    """None means the rules' ``default unearned type``, else ``prepayment``."""
    appointment: str | None = None
    memo: str = ""
    void: StrictBool = False
    refunds: str | None = None
    credit: CreditNote | None = None


class Installment(Record):
    id: str
    due: Day
    amount: Amount


class PaymentPlan(Record):
    id: str
    patient: str
    charges: tuple[str, ...] = ()
    installments: tuple[Installment, ...] = ()


class Split(Record):
    """Part of one payment moved to one charge (optionally via an installment)."""

    id: str
    payment: str
    charge: str | None = None
    installment: str | None = None
    amount: Amount
    date: Day | None = None
    transfer: str | None = None
    reverses: str | None = None
    rule: str | None = None


class HistoryEntry(Record):
    """One applied plan, appended by paysplit and never rewritten."""

    operation: str
    rule: str | None = None
    rules_digest: str | None = None
    plugins: dict[str, str] = Field(default_factory=dict)
    applied_at: str
    splits: tuple[str, ...] = ()
    payments: tuple[str, ...] = ()
    voids: tuple[str, ...] = ()
    charges: tuple[str, ...] = ()
    credits: tuple[str, ...] = ()


class Account(Record):
    """A family or guarantor account: allocation never crosses one."""

    id: str
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
