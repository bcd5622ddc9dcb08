"""Exact money: amounts are int cents in, two-place strings out, and a float never gets in."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from paysplit.ledger_io import parse_ledger_text
from paysplit.money import (
    MAX_CENTS,
    Amount,
    JsonInt,
    JsonNumber,
    MoneyError,
    format_cents,
    parse_amount,
)

cents_values = st.integers(min_value=-(MAX_CENTS - 1), max_value=MAX_CENTS - 1)


@pytest.mark.parametrize(
    ("given_value", "cents"),
    [
        ("100", 10000),
        ("100.5", 10050),
        ("100.50", 10050),
        ("-15.00", -1500),
        ("0.01", 1),
        ("-0.01", -1),
        ("1.500", 150),  # trailing zeros past two places change nothing
        (" 12.50 ", 1250),
        ("$12.50", 1250),
        ("-$3.00", -300),
        (100, 100),  # a Python int is already cents, as in every model
        (-1500, -1500),
        (JsonInt(100), 10000),  # a JSON integer is whole currency units
        (Decimal("1.10"), 110),
        (JsonNumber("12.34"), 1234),
        (JsonNumber("12.5"), 1250),
    ],
)
def test_parse_amount_accepts_exact_forms(given_value: object, cents: int) -> None:
    assert parse_amount(given_value) == cents


@pytest.mark.parametrize(
    ("given_value", "message"),
    [
        ("12.345", "12.345 has more than two decimal places"),
        (JsonNumber("12.345"), "12.345 has more than two decimal places"),
        (Decimal("0.001"), "0.001 has more than two decimal places"),
        (1.5, '1.5 is a binary floating-point number; write amounts as strings like "12.50"'),
        (0.1, '0.1 is a binary floating-point number; write amounts as strings like "12.50"'),
        (True, "true is not an amount"),
        ("NaN", "NaN is not a number"),
        (JsonNumber("NaN"), "NaN is not a number"),
        ("Infinity", "Infinity is not a finite amount"),
        ("-inf", "-inf is not a finite amount"),
        (Decimal("NaN"), "NaN is not a finite amount"),
        ("1e3", "1e3 is written with an exponent; write it as a plain decimal like 1000.00"),
        (
            JsonNumber("2.5E-1"),
            "2.5E-1 is written with an exponent; write it as a plain decimal like 1000.00",
        ),
        ("", "an empty text is not an amount"),
        ("twelve", "'twelve' is not an amount (write it like 12.50)"),
        ("١٢٣", "'١٢٣' is written with digits other than 0-9; write it like 12.50"),
        ("１２３.５０", "'１２３.５０' is written with digits other than 0-9; write it like 12.50"),
        ("12.٥", "'12.٥' is written with digits other than 0-9; write it like 12.50"),
        ("-$٣", "'-$٣' is written with digits other than 0-9; write it like 12.50"),
        ("²", "'²' is written with digits other than 0-9; write it like 12.50"),
        (None, 'null is not an amount; write an amount such as "12.50"'),
        ("1000000000000.00", "1000000000000.00 is too large for an amount"),
    ],
)
def test_parse_amount_refuses_with_a_sentence(given_value: object, message: str) -> None:
    with pytest.raises(MoneyError) as refused:
        parse_amount(given_value)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("cents", "text"),
    [(0, "0.00"), (5, "0.05"), (-5, "-0.05"), (100, "1.00"), (-1500, "-15.00"), (10000, "100.00")],
)
def test_format_cents_has_exactly_two_places(cents: int, text: str) -> None:
    assert format_cents(cents) == text


@given(cents_values)
def test_format_then_parse_is_the_same_cents(cents: int) -> None:
    assert parse_amount(format_cents(cents)) == cents


@given(cents_values)
def test_a_json_number_with_two_places_is_exact(cents: int) -> None:
    # As the ledger reader sees it: the number's own text, never a float.
    assert parse_amount(JsonNumber(format_cents(cents))) == cents


@given(
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=1, max_value=999).filter(lambda f: f % 10 != 0),
    st.booleans(),
)
def test_three_significant_places_are_always_refused(whole: int, part: int, minus: bool) -> None:
    text = f"{'-' if minus else ''}{whole}.{part:03d}"
    with pytest.raises(MoneyError, match="has more than two decimal places"):
        parse_amount(text)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_no_float_is_ever_accepted(value: float) -> None:
    with pytest.raises(MoneyError):
        parse_amount(value)


@given(st.decimals(places=2, min_value=Decimal("-999999999"), max_value=Decimal("999999999")))
def test_two_place_decimals_round_trip(value: Decimal) -> None:
    cents = parse_amount(value)
    assert Decimal(format_cents(cents)) == value


class _Priced(BaseModel):
    amount: Amount


def test_amount_field_reads_text_and_writes_two_places() -> None:
    priced = _Priced.model_validate({"amount": "7.5"})
    assert priced.amount == 750
    assert priced.model_dump(mode="json") == {"amount": "7.50"}
    assert priced.model_dump() == {"amount": 750}


def test_amount_field_refusal_is_the_money_sentence() -> None:
    with pytest.raises(ValidationError) as refused:
        _Priced.model_validate({"amount": "7.505"})
    assert refused.value.errors()[0]["msg"] == "7.505 has more than two decimal places"


@given(cents_values)
def test_amounts_in_a_ledger_document_round_trip_exactly(cents: int) -> None:
    document = {
        "format": "paysplit-ledger/1",
        "practice": {"name": "P", "currency": "USD"},
        "providers": [{"id": "DR1"}],
        "accounts": [
            {
                "id": "A1",
                "patients": [{"id": "P1"}],
                "charges": [
                    {
                        "id": "C1",
                        "patient": "P1",
                        "provider": "DR1",
                        "date": "2025-01-01",
                        "status": "due_patient",
                        "amount": "AMOUNT",
                    }
                ],
            }
        ],
    }
    # Written as a bare JSON number: the reader must keep its exact text.
    text = json.dumps(document).replace('"AMOUNT"', format_cents(cents))
    ledger = parse_ledger_text(text, "money.json")
    assert ledger.accounts[0].charges[0].amount == cents


@given(st.from_regex(r"-?[0-9]{1,12}(\.[0-9]{1,2})?", fullmatch=True))
def test_plain_text_amounts_read_as_the_exact_decimal(text: str) -> None:
    assert parse_amount(text) == int(Decimal(text) * 100)


def test_a_model_dumped_and_validated_again_keeps_its_amounts() -> None:
    from paysplit.ledger import Payment

    payment = Payment.model_validate(
        {
            "id": "PAY1",
            "patient": "P1",
            "payer": "patient",
            "date": "2025-02-25",
            "type": "payment",
            "amount": "150.00",
        }
    )
    assert payment.amount == 15000
    assert Payment.model_validate(payment.model_dump()).amount == 15000
