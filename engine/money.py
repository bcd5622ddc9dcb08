"""Exact money: parsing, arithmetic representation and formatting of amounts.

paysplit keeps every amount as an ``int`` number of cents (``Cents``). Amounts
enter as JSON strings, JSON numbers (kept as their exact source text, never as
a float), or rule-language literals, and leave as strings with exactly two
places (``"100.00"``, ``"-15.00"``). A float never touches money: a Python
``float`` handed to :func:`parse_amount` is refused rather than rounded.
"""

from __future__ import annotations

import functools
import operator
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, TypeAlias

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, PlainSerializer, PlainValidator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

Cents: TypeAlias = int
"""An amount of money as a whole number of cents."""

MAX_CENTS: Cents = 100_000_000_000_000
"""Amounts are refused from one trillion upwards: no practice posts that, a typo does."""

# Digits are [0-9], never \d: \d also matches Arabic-Indic, full-width and every other
# script's digits, which int() and Decimal() would then read as an amount.
_PLAIN = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_SIMPLE = re.compile(r"(-?)([0-9]{1,15})(?:\.([0-9][0-9]?))?")
"""The usual shape of a ledger amount, read without Decimal (200k-account batches)."""
_EXPONENT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][+-]?[0-9]+")


class JsonNumber(str):
    """A JSON number as written in the document, before any conversion.

    The ledger reader hands numbers to the model as their source text so that
    ``12.345`` is reported as having three places instead of being rounded.
    """

    __slots__ = ()


class JsonInt(int):
    """A JSON integer as read from a document: as an amount, whole currency units.

    A plain Python ``int`` in a model is cents; a JSON ``100`` is one hundred
    dollars. JSON readers hand integers over as this type so the two never mix.
    """

    __slots__ = ()


class MoneyError(ValueError):
    """An amount that is not an exact decimal with at most two places."""


def parse_amount(value: object) -> Cents:
    """Turn an amount as written (text, a JSON number, a Decimal) into cents.

    Accepted: ``"100"``, ``"100.5"``, ``"-15.00"``, ``JsonNumber("100")``,
    ``JsonInt(100)``, ``Decimal("1.10")``, and trailing zeros past two places
    (``"1.500"`` is exactly 1.50). A plain Python ``int`` is already cents, as
    every amount in a model is, so ``model_validate(model.model_dump())``
    gives the same amounts back; JSON readers hand numbers over as
    :class:`JsonNumber` text or :class:`JsonInt`.
    Refused, each with a sentence a billing user understands: more than two
    places, exponents, NaN, infinity, floats, booleans, empty or non-numeric text.
    """
    if isinstance(value, bool):
        raise MoneyError(f"{str(value).lower()} is not an amount")
    if isinstance(value, JsonInt):
        cents = int(value) * 100
    elif isinstance(value, int):
        cents = value
    elif isinstance(value, float):
        raise MoneyError(
            f'{value!r} is a binary floating-point number; write amounts as strings like "12.50"'
        )
    elif isinstance(value, Decimal):
        cents = _decimal_to_cents(value, str(value))
    elif isinstance(value, str):
        cents = _text_to_cents(value)
    elif value is None:
        raise MoneyError('null is not an amount; write an amount such as "12.50"')
    else:
        raise MoneyError(f"{type(value).__name__} value is not an amount")
    if abs(cents) >= MAX_CENTS:
        raise MoneyError(f"{_shown(value)} is too large for an amount")
    return cents


def _shown(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text_to_cents(text: str) -> Cents:
    simple = _SIMPLE.fullmatch(text)
    if simple is not None:
        sign, whole, part = simple.groups()
        cents = int(whole) * 100 + (int(part.ljust(2, "0")) if part else 0)
        return -cents if sign else cents
    raw = text.strip()
    if raw.startswith("$"):
        raw = raw[1:]
    elif raw.startswith("-$"):
        raw = "-" + raw[2:]
    if _PLAIN.fullmatch(raw):
        return _decimal_to_cents(Decimal(raw), text)
    lowered = raw.lower().lstrip("+-")
    if lowered in {"nan", "snan"}:
        raise MoneyError(f"{_shown(text)} is not a number")
    if lowered in {"inf", "infinity"}:
        raise MoneyError(f"{_shown(text)} is not a finite amount")
    if _EXPONENT.fullmatch(raw):
        raise MoneyError(
            f"{_shown(text)} is written with an exponent; write it as a plain decimal like 1000.00"
        )
    if not raw:
        raise MoneyError("an empty text is not an amount")
    if any(c.isdigit() and not c.isascii() for c in raw):
        raise MoneyError(
            f"{_shown(text)!r} is written with digits other than 0-9; write it like 12.50"
        )
    raise MoneyError(f"{_shown(text)!r} is not an amount (write it like 12.50)")


def _decimal_to_cents(amount: Decimal, source: str) -> Cents:
    if not amount.is_finite():
        raise MoneyError(f"{_shown(source)} is not a finite amount")
    try:
        scaled = amount.scaleb(2)
        whole = scaled.to_integral_value()
    except InvalidOperation as exc:  # pragma: no cover - finite decimals always scale
        raise MoneyError(f"{_shown(source)} is not an amount") from exc
    if scaled != whole:
        raise MoneyError(f"{_shown(source)} has more than two decimal places")
    return int(whole)


def format_cents(cents: Cents) -> str:
    """Format cents as a two-place string: 10000 -> "100.00", -1500 -> "-15.00"."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def _validate_amount(value: Any) -> Cents:
    try:
        return parse_amount(value)
    except MoneyError as exc:
        raise PydanticCustomError("amount", str(exc)) from None


def _json_amount(value: Any) -> Cents:
    """An amount as ``model_validate_json`` hands it over: a JSON integer is whole currency
    units (the :class:`JsonInt` the ledger reader makes); a JSON number with a fraction or an
    exponent arrives as a float and is refused, as a float always is (the ledger reader, which
    keeps its exact text, decides about it)."""
    return _validate_amount(JsonInt(value) if type(value) is int else value)


_MAX_UNITS = MAX_CENTS // 100
_JSON_AMOUNT = core_schema.union_schema(
    [
        # "217.93": the usual amount, to cents without a Python frame ("-0.05" -> "-005" -> -5).
        core_schema.chain_schema(
            [
                core_schema.str_schema(pattern=r"^-?[0-9]{1,12}\.[0-9]{2}$"),
                core_schema.no_info_plain_validator_function(
                    operator.methodcaller("replace", ".", "")
                ),
                core_schema.int_schema(),
            ]
        ),
        # 501: a JSON integer is whole currency units.
        core_schema.chain_schema(
            [
                core_schema.int_schema(strict=True, gt=-_MAX_UNITS, lt=_MAX_UNITS),
                core_schema.no_info_plain_validator_function(functools.partial(operator.mul, 100)),
            ]
        ),
        # Anything else is read (or refused) as the ledger reader's value would be.
        core_schema.no_info_plain_validator_function(_json_amount),
    ],
    mode="left_to_right",
)
"""How ``model_validate_json`` reads an amount: exactly, never from a float."""


class JsonMode:
    """An ``Annotated`` marker: validate the field with ``schema`` in JSON mode.

    ``model_validate_json`` (the fast reader, :mod:`paysplit.ledger_fast`) then checks the
    field in pydantic-core as far as it can, while ``model_validate`` (Python mode, every
    other reader) stays exactly what the annotations before the marker make it. The JSON
    schema may refuse more than the Python one (the reader then falls back to the path that
    explains why), never accept more nor give another value.
    """

    __slots__ = ("schema",)

    def __init__(self, schema: core_schema.CoreSchema) -> None:
        self.schema = schema

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.json_or_python_schema(
            json_schema=self.schema, python_schema=handler(source)
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # The documented shape is the Python mode's, as it was before the marker (with the
        # serializer of an annotation after it, such as Amount's).
        if schema["type"] == "json-or-python":
            outer = schema.get("serialization")
            schema = schema["python_schema"]
            if outer is not None:
                schema = {**schema, "serialization": outer}
        return handler(schema)


Amount = Annotated[
    Cents,
    PlainValidator(_validate_amount, json_schema_input_type=str),
    JsonMode(_JSON_AMOUNT),
    PlainSerializer(format_cents, return_type=str, when_used="json"),
]
"""A model field holding cents, read from any exact form and written as "0.00" in JSON."""
