"""Loading and writing ledgers: every problem with its path, exact JSON, atomic files."""

from __future__ import annotations

import copy
import json
import os
import stat
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from paysplit import ledger_io
from paysplit.errors import LedgerError, Problem, UsageError
from paysplit.ledger import Account, Ledger
from paysplit.ledger_io import (
    LedgerWriteError,
    account_from_document,
    account_from_line,
    dump_jsonl_line,
    dump_ledger,
    iter_jsonl,
    ledger_from_document,
    load_jsonl_ledger,
    load_ledger,
    parse_ledger_text,
    read_ledger_for_cli,
    write_jsonl,
    write_ledger,
)
from paysplit.money import JsonInt, JsonNumber

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "ledgers"

FOUR_MISTAKES = """{
  "format": "paysplit-ledger/1",
  "practice": {"name": "Smile Dental", "currency": "USD"},
  "providers": [{"id": "DR1"}],
  "accounts": [
    {"id": "A1",
     "patients": [{"id": "P1"}],
     "charges": [
       {"id": "C1", "patient": "P1", "provider": "DR1", "date": "2025-01-22",
        "amount": "12.345", "status": "due_patient"},
       {"id": "C2", "patient": "P1", "provider": "DR1", "date": "2025-01-23",
        "amout": "10.00", "amount": "10.00", "status": "due_patient"}
     ]},
    {"id": "A2",
     "patients": [{"id": "P2"}],
     "charges": [
       {"id": "C1", "patient": "P2", "provider": "DR1", "date": "2025-01-22",
        "amount": "5.00", "status": "due_patient"}
     ],
     "payments": [
       {"id": "PAY1", "patient": "P9", "payer": "patient", "date": "2025-02-01",
        "type": "payment", "amount": "5.00"}
     ]}
  ]
}
"""
"""A three-place amount, an unknown field, a duplicate id and a dangling reference."""

FOUR_MISTAKES_PROBLEMS = [
    ("accounts[0].charges[0].amount", "12.345 has more than two decimal places"),
    ("accounts[0].charges[1].amout", 'unknown field "amout" (did you mean "amount"?)'),
    ("accounts[1].charges[0].id", "C1 is used twice (also at accounts[0].charges[0].id)"),
    ("accounts[1].payments[0].patient", "P9 is not a patient of account A2"),
]


def base() -> dict[str, Any]:
    """A small valid ledger document every test changes in one place."""
    return {
        "format": "paysplit-ledger/1",
        "practice": {"name": "Smile Dental", "currency": "USD", "as_of": "2025-03-01"},
        "providers": [{"id": "DR1", "name": "Dr One"}, {"id": "DR2", "name": "Dr Two"}],
        "offices": [{"id": "MAIN"}],
        "accounts": [
            {
                "id": "A1",
                "patients": [{"id": "P1", "name": "Jenny"}, {"id": "P2", "guarantor": "P1"}],
                "appointments": [{"id": "AP1", "patient": "P1", "start": "2025-01-22T11:30:00"}],
                "charges": [
                    {
                        "id": "C1",
                        "patient": "P1",
                        "provider": "DR1",
                        "office": "MAIN",
                        "appointment": "AP1",
                        "date": "2025-01-22",
                        "amount": "100.00",
                        "status": "due_patient",
                    },
                    {
                        "id": "C2",
                        "patient": "P2",
                        "provider": "DR2",
                        "date": "2025-01-23",
                        "amount": "50.00",
                        "status": "due_insurance",
                    },
                ],
                "adjustments": [
                    {"id": "ADJ1", "patient": "P1", "amount": "-20.00"},
                    {"id": "ADJ2", "patient": "P1", "amount": "5.00", "charge": "C1"},
                ],
                "payments": [
                    {
                        "id": "PAY1",
                        "patient": "P1",
                        "payer": "patient",
                        "provider": "DR1",
                        "date": "2025-02-25",
                        "type": "payment",
                        "amount": "200.00",
                    },
                    {
                        "id": "RF1",
                        "patient": "P1",
                        "payer": "patient",
                        "date": "2025-02-26",
                        "type": "refund",
                        "amount": "-10.00",
                        "refunds": "PAY1",
                    },
                ],
                "plans": [
                    {
                        "id": "PLAN1",
                        "patient": "P1",
                        "charges": ["C1"],
                        "installments": [{"id": "I1", "due": "2025-03-01", "amount": "50.00"}],
                    }
                ],
                "splits": [
                    {"id": "S1", "payment": "PAY1", "charge": "C1", "amount": "40.00"},
                    {"id": "S2", "payment": "PAY1", "charge": "C1", "installment": "I1",
                     "amount": "10.00"},
                ],
            },
            {
                "id": "A2",
                "patients": [{"id": "P3"}],
                "charges": [
                    {
                        "id": "C3",
                        "patient": "P3",
                        "provider": "DR1",
                        "date": "2025-01-02",
                        "amount": "30.00",
                        "status": "due_patient",
                    }
                ],
            },
        ],
    }  # fmt: skip


def problems_of(doc: dict[str, Any] | str) -> list[tuple[str, str]]:
    text = doc if isinstance(doc, str) else json.dumps(doc)
    with pytest.raises(LedgerError) as failed:
        parse_ledger_text(text, "test.json")
    return [(p.path, p.message) for p in failed.value.problems]


def changed(change: Callable[[dict[str, Any]], object]) -> list[tuple[str, str]]:
    doc = base()
    change(doc)
    return problems_of(doc)


def account0(doc: dict[str, Any]) -> dict[str, Any]:
    account: dict[str, Any] = doc["accounts"][0]
    return account


# --------------------------------------------------------------------------
# A good ledger
# --------------------------------------------------------------------------
def test_the_base_ledger_loads_with_defaults() -> None:
    ledger = parse_ledger_text(json.dumps(base()), "test.json")
    account = ledger.accounts[0]
    charge = account.charges[1]
    assert (charge.kind, charge.code, charge.insurance_estimate, charge.office) == (
        "procedure",
        "",
        0,
        None,
    )
    payment = account.payments[0]
    assert (payment.method, payment.void, payment.unearned_type, payment.credit) == (
        "",
        False,
        None,
        None,
    )
    assert account.charges[0].amount == 10000
    assert account.adjustments[0].amount == -2000
    assert ledger.accounts[1].payments == ()
    assert ledger.history == ()


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.json")))
def test_every_example_ledger_loads(name: str) -> None:
    assert load_ledger(EXAMPLES / name).format == "paysplit-ledger/1"


def test_a_bare_decimal_number_is_read_exactly_not_as_a_float() -> None:
    text = json.dumps(base()).replace('"100.00"', "100.10")
    assert parse_ledger_text(text, "t").accounts[0].charges[0].amount == 10010


def test_a_document_already_parsed_may_hold_ints_decimals_and_json_numbers() -> None:
    doc = base()
    charges = account0(doc)["charges"]
    charges[0]["amount"] = 100  # a Python int is cents, as in the models themselves
    charges[1]["amount"] = Decimal("50.5")
    account0(doc)["payments"][0]["amount"] = JsonNumber("200.25")
    account = ledger_from_document(doc, "plugin").accounts[0]
    assert [c.amount for c in account.charges] == [100, 5050]
    assert account.payments[0].amount == 20025


def test_a_float_in_a_parsed_document_is_refused() -> None:
    doc = base()
    account0(doc)["charges"][0]["amount"] = 100.5
    with pytest.raises(LedgerError) as failed:
        ledger_from_document(doc, "plugin")
    assert failed.value.problems == [
        Problem(
            "accounts[0].charges[0].amount",
            '100.5 is a binary floating-point number; write amounts as strings like "12.50"',
        )
    ]


# --------------------------------------------------------------------------
# Text that is not a JSON document
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the document is empty"),
        ("  \n", "the document is empty"),
        ('{"format": "x",\n  "a" 1}', "the document is not valid JSON: expecting ':' delimiter "
         "(line 2, column 7)"),
        ("[" * 100_000, "the document is nested too deeply to be a ledger (lists or objects "
         "inside each other hundreds of levels deep)"),
        ("[1, 2]", 'a ledger is a JSON object with "format", "practice", "providers" and '
         '"accounts", not a list'),
    ],
)  # fmt: skip
def test_text_that_is_no_ledger_is_one_problem(text: str, message: str) -> None:
    assert problems_of(text) == [("", message)]


def test_bytes_that_are_not_utf8() -> None:
    with pytest.raises(LedgerError) as failed:
        parse_ledger_text(b'{"a": "\xff"}', "t")
    assert failed.value.problems == [
        Problem("", "the document is not UTF-8 text (byte 8 cannot be read)")
    ]


def test_a_byte_order_mark_is_tolerated() -> None:
    data = "\ufeff" + json.dumps(base())
    assert parse_ledger_text(data.encode("utf-8"), "t").practice.name == "Smile Dental"


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LedgerError) as failed:
        load_ledger(tmp_path / "nope.json")
    assert failed.value.source == str(tmp_path / "nope.json")
    assert failed.value.problems == [Problem("", "no such file")]


# --------------------------------------------------------------------------
# Numbers and keys the JSON reader refuses, each at its path
# --------------------------------------------------------------------------
OTHER_DIGITS = "is written with digits other than 0-9; write it like 12.50"


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("12.345", "12.345 has more than two decimal places"),
        ('"12.345"', "12.345 has more than two decimal places"),
        ("1e3", "1e3 is written with an exponent; write it as a plain decimal like 1000.00"),
        ("NaN", 'NaN is not a number a ledger can hold; write amounts like "12.50"'),
        ("Infinity", 'Infinity is not a number a ledger can hold; write amounts like "12.50"'),
        ("-Infinity", '-Infinity is not a number a ledger can hold; write amounts like "12.50"'),
        ("123456789012345678901234", "123456789012345678901234 is too large for an amount"),
        ("true", "true is not an amount"),
        ("null", '"amount" cannot be null; write an amount such as "12.50"'),
        ('"\u0661\u0662\u0663"', f"'١٢٣' {OTHER_DIGITS}"),
        ('"\uff11\uff12.50"', f"'１２.50' {OTHER_DIGITS}"),
    ],
)
def test_bad_amounts_are_reported_at_their_path(written: str, message: str) -> None:
    text = json.dumps(base()).replace('"100.00"', written, 1)
    assert problems_of(text) == [("accounts[0].charges[0].amount", message)]


def test_a_duplicate_key_is_reported_at_its_path() -> None:
    text = json.dumps(base()).replace('"status": "due_patient"', '"status": "due_patient", '
                                      '"status": "collection"', 1)  # fmt: skip
    assert problems_of(text) == [
        ("accounts[0].charges[0].status", '"status" is given twice in this object')
    ]


# --------------------------------------------------------------------------
# Shape: pydantic's findings as sentences
# --------------------------------------------------------------------------
def test_unknown_field_with_a_suggestion() -> None:
    assert changed(lambda d: account0(d)["charges"][0].update(amout="1.00")) == [
        ("accounts[0].charges[0].amout", 'unknown field "amout" (did you mean "amount"?)')
    ]


def test_unknown_field_without_a_suggestion_points_to_extra() -> None:
    assert changed(lambda d: account0(d)["payments"][0].update(chart_number="77")) == [
        (
            "accounts[0].payments[0].chart_number",
            'unknown field "chart_number" (practice-system data goes under "extra")',
        )
    ]


def test_a_missing_field_is_reported_on_its_record() -> None:
    assert changed(lambda d: account0(d)["charges"][1].pop("provider")) == [
        ("accounts[0].charges[1]", '"provider" is required')
    ]


def test_missing_top_level_fields() -> None:
    assert changed(lambda d: (d.pop("providers"), d["practice"].pop("currency"))) == [
        ("practice", '"currency" is required'),
        ("", '"providers" is required'),
    ]


@pytest.mark.parametrize(
    ("where", "field", "value", "message"),
    [
        ("charges", "code", 99213, "99213 is a number; write it as text in quotes"),
        ("charges", "status", None, '"status" cannot be null here'),
        ("charges", "insurance_estimate", None,
         '"insurance_estimate" cannot be null; write an amount such as "12.50"'),
        ("charges", "date", None, '"date" cannot be null; write dates as YYYY-MM-DD'),
        ("payments", "payer", None, '"payer" must be "patient" or "insurance", not null'),
        ("payments", "void", None, '"void" must be true or false, not null'),
        ("patients", "name", 1.5, "1.5 is a number; write it as text in quotes"),
        ("patients", "name", 15, "15 is a number; write it as text in quotes"),
        ("charges", "status", 0.5, "0.5 is a number; write it as text in quotes"),
        ("charges", "code", 99213.0, "99213.0 is a number; write it as text in quotes"),
        ("payments", "memo", -1.25, "-1.25 is a number; write it as text in quotes"),
        ("charges", "status", ["due_patient"], '"status" must be text, not a list'),
        ("charges", "date", "2025-13-01",
         '"2025-13-01" is not a valid date (month value is outside expected range of 1-12)'),
        ("charges", "date", "22/01/2025", '"22/01/2025" is not a date; write dates as YYYY-MM-DD'),
        ("charges", "date", 86400, "86400 is not a date; write dates as YYYY-MM-DD"),
        ("charges", "date", "٢٠٢٥-٠١-٢٢", '"٢٠٢٥-٠١-٢٢" is not a date; write dates as YYYY-MM-DD'),
        ("charges", "date", "2025-01-22T10:00:00",
         '"2025-01-22T10:00:00" is not a date; write dates as YYYY-MM-DD'),
        ("appointments", "start", "2025-01-22T11:30:00+02:00",
         '"2025-01-22T11:30:00+02:00" has a time zone; ledger times are local, written without '
         "one"),
        ("appointments", "start", "2025-01-22T25:00:00",
         '"2025-01-22T25:00:00" is not a valid date and time; write YYYY-MM-DDTHH:MM:SS'),
        ("appointments", "start", 1737545400,
         "1737545400 is not a date and time; write times as YYYY-MM-DDTHH:MM:SS"),
        ("payments", "payer", "cash", '"payer" must be "patient" or "insurance", not "cash"'),
        ("payments", "void", 1, '"void" must be true or false, not 1'),
        ("payments", "void", "false", '"void" must be true or false, not "false"'),
        ("payments", "credit", "yes", 'this must be an object, not text'),
        ("plans", "charges", "C1", '"charges" must be a list, not text'),
        ("charges", "extra", [1], "extra must be an object"),
    ],
)  # fmt: skip
def test_wrong_values_are_plain_sentences(
    where: str, field: str, value: object, message: str
) -> None:
    assert changed(lambda d: account0(d)[where][0].update({field: value})) == [
        (f"accounts[0].{where}[0].{field}", message)
    ]


@pytest.mark.parametrize("number", ["15", "1.5", "1e3", "0.10", "9" * 5000])
def test_an_id_written_as_a_number_is_refused_whatever_the_number(number: str) -> None:
    text = json.dumps(base()).replace('"id": "P1"', f'"id": {number}', 1)
    shown = number if len(number) <= 40 else number[:37] + "..."
    assert problems_of(text)[:2] == [
        ("accounts[0].patients[0].id", f"{shown} is a number; write it as text in quotes"),
        ("accounts[0].patients[1].guarantor", "P1 is not a patient of account A1 (a guarantor "
         "is a patient of the same account)"),
    ]  # fmt: skip


def test_a_history_entry_refuses_numbers_where_text_goes() -> None:
    entry = {"operation": "void", "applied_at": "2025-03-01T09:00:00", "voids": [1.5],
             "plugins": {"paysplit.x": 0.1}}  # fmt: skip
    assert changed(lambda d: d.update(history=[entry])) == [
        ("history[0].voids[0]", "1.5 is a number; write it as text in quotes"),
        ('history[0].plugins["paysplit.x"]', "0.1 is a number; write it as text in quotes"),
    ]


def test_dates_are_written_with_the_digits_0_to_9() -> None:
    def change(doc: dict[str, Any]) -> None:
        account0(doc)["plans"][0]["installments"][0]["due"] = "2025-\uff10\uff13-01"
        account0(doc)["appointments"][0]["start"] = "\u0662\u0660\u0662\u0665-01-22T11:30:00"

    assert changed(change) == [
        ("accounts[0].appointments[0].start",
         '"٢٠٢٥-01-22T11:30:00" is not a valid date and time; write YYYY-MM-DDTHH:MM:SS'),
        ("accounts[0].plans[0].installments[0].due",
         '"2025-０３-01" is not a date; write dates as YYYY-MM-DD'),
    ]  # fmt: skip


def test_wrong_format_name() -> None:
    assert changed(lambda d: d.update(format="paysplit-ledger/2")) == [
        ("format", '"format" must be "paysplit-ledger/1", not "paysplit-ledger/2"')
    ]


def test_a_record_that_is_not_an_object() -> None:
    assert changed(lambda d: account0(d)["charges"].append("C9")) == [
        ("accounts[0].charges[2]", "this must be an object, not text")
    ]


def test_extra_deeper_than_the_limit() -> None:
    nested: dict[str, Any] = {}
    node = nested
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    assert changed(lambda d: account0(d)["charges"][0].update(extra=nested)) == [
        ("accounts[0].charges[0].extra", "extra is nested more than 32 levels deep")
    ]


# --------------------------------------------------------------------------
# References, ids and the rules of the document
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (lambda a: a["charges"][0].update(patient="P3"), "accounts[0].charges[0].patient",
         "P3 is not a patient of account A1"),
        (lambda a: a["charges"][0].update(provider="DR9"), "accounts[0].charges[0].provider",
         "DR9 is not one of the practice's providers (DR1, DR2)"),
        (lambda a: a["charges"][0].update(office="WEST"), "accounts[0].charges[0].office",
         "WEST is not one of the practice's offices (MAIN)"),
        (lambda a: a["charges"][0].update(appointment="AP9"),
         "accounts[0].charges[0].appointment", "AP9 is not an appointment of account A1"),
        (lambda a: a["appointments"][0].update(patient="P9"),
         "accounts[0].appointments[0].patient", "P9 is not a patient of account A1"),
        (lambda a: a["patients"][1].update(guarantor="P3"), "accounts[0].patients[1].guarantor",
         "P3 is not a patient of account A1 (a guarantor is a patient of the same account)"),
        (lambda a: a["patients"][1].update(guarantor="P2"), "accounts[0].patients[1].guarantor",
         "a patient cannot be their own guarantor"),
        (lambda a: a["adjustments"][1].update(charge="C3"), "accounts[0].adjustments[1].charge",
         "C3 is not a charge of account A1"),
        (lambda a: a["payments"][0].update(appointment="AP2"),
         "accounts[0].payments[0].appointment", "AP2 is not an appointment of account A1"),
        (lambda a: a["payments"][0].update(credit={"due_to": "patient", "office": "EAST"}),
         "accounts[0].payments[0].credit.office",
         "EAST is not one of the practice's offices (MAIN)"),
        (lambda a: a["payments"][1].update(refunds="PAY7"), "accounts[0].payments[1].refunds",
         "PAY7 is not a payment of account A1"),
        (lambda a: a["plans"][0].update(patient="P3"), "accounts[0].plans[0].patient",
         "P3 is not a patient of account A1"),
        (lambda a: a["plans"][0]["charges"].append("C3"), "accounts[0].plans[0].charges[1]",
         "C3 is not a charge of account A1"),
        (lambda a: a["splits"][0].update(payment="PAY2"), "accounts[0].splits[0].payment",
         "PAY2 is not a payment of account A1"),
        (lambda a: a["splits"][0].update(charge="C3"), "accounts[0].splits[0].charge",
         "C3 is not a charge of account A1"),
        (lambda a: a["splits"][0].update(reverses="S9"), "accounts[0].splits[0].reverses",
         "S9 is not a split of account A1"),
        (lambda a: a["splits"][1].update(installment="I9"), "accounts[0].splits[1].installment",
         "I9 is not an installment of a payment plan of account A1"),
    ],
)  # fmt: skip
def test_dangling_references(
    change: Callable[[dict[str, Any]], object], path: str, message: str
) -> None:
    assert changed(lambda d: change(account0(d))) == [(path, message)]


def test_offices_listed_as_none() -> None:
    def change(doc: dict[str, Any]) -> None:
        doc.pop("offices")
        account0(doc)["charges"][0].pop("office")
        account0(doc)["charges"][1]["office"] = "MAIN"

    assert changed(change) == [
        ("accounts[0].charges[1].office",
         "MAIN is not one of the practice's offices (none are listed)")
    ]  # fmt: skip


def test_a_patient_of_another_account_is_not_a_patient_of_this_one() -> None:
    assert changed(lambda d: d["accounts"][1]["charges"][0].update(patient="P1")) == [
        ("accounts[1].charges[0].patient", "P1 is not a patient of account A2")
    ]


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (lambda d: d["accounts"][1].update(id="A1"), "accounts[1].id",
         "A1 is used twice (also at accounts[0].id)"),
        (lambda d: (d["accounts"][1]["patients"][0].update(id="P1"),
                    d["accounts"][1]["charges"][0].update(patient="P1")),
         "accounts[1].patients[0].id", "P1 is used twice (also at accounts[0].patients[0].id)"),
        (lambda d: d["providers"].append({"id": "DR1", "name": "Dr One, again"}),
         "providers[2].id", "DR1 is used twice (also at providers[0].id)"),
        (lambda d: account0(d)["plans"][0]["installments"].append(
            {"id": "I1", "due": "2025-04-01", "amount": "50.00"}),
         "accounts[0].plans[0].installments[1].id",
         "I1 is used twice (also at accounts[0].plans[0].installments[0].id)"),
        (lambda d: account0(d)["splits"][1].update(id="S1"), "accounts[0].splits[1].id",
         "S1 is used twice (also at accounts[0].splits[0].id)"),
    ],
)  # fmt: skip
def test_ids_are_unique_within_their_kind_across_the_document(
    change: Callable[[dict[str, Any]], object], path: str, message: str
) -> None:
    assert changed(change) == [(path, message)]


def test_the_same_id_in_two_kinds_is_fine() -> None:
    doc = base()
    account0(doc)["plans"][0]["id"] = "C1"  # a plan and a charge may share an id
    assert parse_ledger_text(json.dumps(doc), "t").accounts[0].plans[0].id == "C1"


@pytest.mark.parametrize("amount", ["25.00", "0.01"])
def test_a_positive_unattached_adjustment_belongs_in_the_charges(amount: str) -> None:
    assert changed(lambda d: account0(d)["adjustments"][0].update(amount=amount)) == [
        (
            "accounts[0].adjustments[0].amount",
            f"an unattached adjustment of {amount} is production, not a credit: enter it as a "
            'charge of kind "adjustment" (only a negative adjustment may stay unattached)',
        )
    ]


def test_a_zero_unattached_adjustment() -> None:
    assert changed(lambda d: account0(d)["adjustments"][0].update(amount="0")) == [
        (
            "accounts[0].adjustments[0].amount",
            "an unattached adjustment of 0.00 changes nothing: attach it to a charge or remove it",
        )
    ]


def test_an_attached_adjustment_may_have_any_sign() -> None:
    doc = base()
    account0(doc)["adjustments"][1]["amount"] = "-5.00"
    assert parse_ledger_text(json.dumps(doc), "t").accounts[0].adjustments[1].amount == -500


@pytest.mark.parametrize(
    ("change", "found"),
    [
        (lambda p: p[1].update(amount="10.00"), [("accounts[0].payments[1].amount",
         "a refund has a negative amount (the money paid back), not 10.00")]),
        (lambda p: p[1].pop("refunds"), [("accounts[0].payments[1].refunds",
         'a refund names the payment it refunds in "refunds"')]),
        (lambda p: p[1].update(refunds="RF1"), [("accounts[0].payments[1].refunds",
         "a refund cannot refund itself")]),
        (lambda p: p.append({"id": "RF2", "patient": "P1", "payer": "patient",
                             "date": "2025-02-27", "type": "refund", "amount": "-1.00",
                             "refunds": "RF1"}),
         [("accounts[0].payments[2].refunds",
           "RF1 is itself a refund; name the payment the money was paid with")]),
        (lambda p: p[0].update(amount="-5.00"), [("accounts[0].payments[0].amount",
         "a payment cannot be negative (-5.00); money paid back is a payment of type \"refund\" "
         "that names the payment it refunds")]),
        (lambda p: p[0].update(refunds="RF1"), [("accounts[0].payments[0].refunds",
         'only a refund (type "refund") names a payment in "refunds"')]),
    ],
)  # fmt: skip
def test_refund_rules(
    change: Callable[[list[dict[str, Any]]], object], found: list[tuple[str, str]]
) -> None:
    assert changed(lambda d: change(account0(d)["payments"])) == found


@pytest.mark.parametrize(
    ("change", "found"),
    [
        (lambda s: s.update(charge=None, installment=None), [("accounts[0].splits[0]",
         "a split names the charge or the installment it pays")]),
        (lambda s: s.pop("charge"), [("accounts[0].splits[0]",
         "a split names the charge or the installment it pays")]),
        (lambda s: s.update(charge=None, installment="I1"), [("accounts[0].splits[0]",
         "a split to installment I1 also names the charge of plan PLAN1 that it pays (C1)")]),
        (lambda s: s.update(charge="C2", installment="I1"), [("accounts[0].splits[0].charge",
         "C2 is not one of plan PLAN1's charges (C1); a split to installment I1 pays one of "
         "them")]),
    ],
)  # fmt: skip
def test_split_targets(
    change: Callable[[dict[str, Any]], object], found: list[tuple[str, str]]
) -> None:
    assert changed(lambda d: change(account0(d)["splits"][0])) == found


# --------------------------------------------------------------------------
# Every problem at once, in document order
# --------------------------------------------------------------------------
def test_the_four_mistake_ledger_reports_all_four_in_order() -> None:
    assert problems_of(FOUR_MISTAKES) == FOUR_MISTAKES_PROBLEMS


def test_references_are_checked_even_when_the_shape_is_wrong_elsewhere() -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["accounts"][1]["charges"][0]["amount"] = "1.001"
        doc["accounts"][1]["charges"][0]["patient"] = "P1"
        account0(doc)["charges"][0]["status"] = 7
        account0(doc)["payments"][0]["patient"] = "P3"
        doc["practice"]["currency"] = None

    assert changed(change) == [
        ("practice.currency", '"currency" cannot be null here'),
        ("accounts[0].charges[0].status", "7 is a number; write it as text in quotes"),
        ("accounts[0].payments[0].patient", "P3 is not a patient of account A1"),
        ("accounts[1].charges[0].patient", "P1 is not a patient of account A2"),
        ("accounts[1].charges[0].amount", "1.001 has more than two decimal places"),
    ]


def test_load_ledger_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "four.json"
    path.write_text(FOUR_MISTAKES)
    with pytest.raises(LedgerError) as failed:
        load_ledger(path)
    assert failed.value.source == str(path)
    assert failed.value.exit_code == 2
    assert failed.value.to_json() == {
        "file": str(path),
        "errors": [{"path": p, "message": m} for p, m in FOUR_MISTAKES_PROBLEMS],
    }


# --------------------------------------------------------------------------
# One account against a header (batch)
# --------------------------------------------------------------------------
def test_account_from_document_uses_the_prefix_and_the_header() -> None:
    ledger = ledger_from_document(base(), "t")
    doc = copy.deepcopy(base()["accounts"][1])
    doc["charges"][0]["provider"] = "DR7"
    doc["charges"].append(dict(doc["charges"][0], id="C3", provider="DR1"))
    with pytest.raises(LedgerError) as failed:
        account_from_document(doc, "big.jsonl line 9", ledger.header(), "accounts[7]")
    assert failed.value.source == "big.jsonl line 9"
    assert [(p.path, p.message) for p in failed.value.problems] == [
        ("accounts[7].charges[0].provider",
         "DR7 is not one of the practice's providers (DR1, DR2)"),
        ("accounts[7].charges[1].id", "C3 is used twice (also at accounts[7].charges[0].id)"),
    ]  # fmt: skip


def test_account_from_document_returns_the_account() -> None:
    ledger = ledger_from_document(base(), "t")
    account = account_from_document(base()["accounts"][0], "s", ledger.header(), "accounts[0]")
    assert account == ledger.accounts[0]


def test_account_from_line_parses_and_validates() -> None:
    header = ledger_from_document(base(), "t").header()
    line = json.dumps(base()["accounts"][1]).replace('"30.00"', "30.005").encode()
    with pytest.raises(LedgerError) as failed:
        account_from_line(line, "x.jsonl line 3", header, "accounts[1]", 3)
    assert failed.value.problems == [
        Problem("accounts[1].charges[0].amount", "30.005 has more than two decimal places")
    ]
    with pytest.raises(LedgerError) as broken:
        account_from_line(b"{oops", "x.jsonl line 4", header, "accounts[2]", 4)
    assert broken.value.problems == [
        Problem(
            "accounts[2]",
            "line 4 is not valid JSON: expecting property name enclosed in double quotes "
            "(column 2)",
        )
    ]


# --------------------------------------------------------------------------
# JSON Lines
# --------------------------------------------------------------------------
def jsonl_lines(doc: dict[str, Any]) -> list[str]:
    header = {k: v for k, v in doc.items() if k != "accounts"}
    return [json.dumps(header)] + [json.dumps(a) for a in doc["accounts"]]


def test_jsonl_streams_and_a_corrupt_middle_line_costs_only_itself(tmp_path: Path) -> None:
    doc = base()
    third = copy.deepcopy(doc["accounts"][1])
    third["id"] = "A3"
    third["patients"][0]["id"] = "P4"
    third["charges"][0].update(id="C4", patient="P4")
    lines = jsonl_lines(doc)
    lines.insert(2, '{"id": "A9", "patients": [')
    lines.append("")
    lines.append(json.dumps(third))
    path = tmp_path / "ledger.jsonl"
    path.write_text("\n".join(lines) + "\n")
    header, accounts = iter_jsonl(path)
    assert [p.id for p in header.providers] == ["DR1", "DR2"]
    items = list(accounts)
    assert [n for n, _ in items] == [2, 3, 4, 6]
    assert isinstance(items[0][1], Account) and items[0][1].id == "A1"
    error = items[1][1]
    assert isinstance(error, LedgerError)
    assert error.source == f"{path} line 3"
    assert error.problems == [
        Problem(
            "accounts[1]",
            "line 3 is not valid JSON: expecting value (column 27)",
        )
    ]
    assert [a.id for _, a in items[2:] if isinstance(a, Account)] == ["A2", "A3"]


def test_jsonl_reads_one_line_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = jsonl_lines(base())
    path = tmp_path / "ledger.jsonl"
    path.write_text("\n".join(lines) + "\n")
    seen: list[int | None] = []
    real = ledger_io.account_from_line

    def counting(raw: str | bytes, source: str, header: Any, prefix: str = "",
                 line_number: int | None = None) -> Account:  # fmt: skip
        seen.append(line_number)
        return real(raw, source, header, prefix, line_number)

    monkeypatch.setattr(ledger_io, "account_from_line", counting)
    _, accounts = iter_jsonl(path)
    assert seen == []
    next(accounts)
    assert seen == [2]


def test_jsonl_schema_problems_and_duplicate_accounts(tmp_path: Path) -> None:
    doc = base()
    bad = copy.deepcopy(doc["accounts"][1])
    bad["charges"][0]["amount"] = "1.234"
    again = copy.deepcopy(doc["accounts"][0])
    path = tmp_path / "ledger.jsonl"
    path.write_text("\n".join([*jsonl_lines(doc), json.dumps(bad), json.dumps(again)]) + "\n")
    _, accounts = iter_jsonl(path)
    items = list(accounts)
    errors = [(n, e.problems) for n, e in items if isinstance(e, LedgerError)]
    assert errors == [
        (4, [Problem("accounts[2].charges[0].amount", "1.234 has more than two decimal places")]),
        (5, [Problem("accounts[3].id", "A1 is used twice (also at line 2)")]),
    ]


def test_jsonl_header_problems_stop_at_once(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    header = {k: v for k, v in base().items()}
    path.write_text(json.dumps(header) + "\n")
    with pytest.raises(LedgerError) as failed:
        iter_jsonl(path)
    assert failed.value.source == f"{path} line 1"
    assert failed.value.problems == [
        Problem(
            "accounts",
            "the first line of a JSON Lines ledger is the header (everything but the accounts); "
            "put each account on a line of its own after it",
        )
    ]


def test_load_jsonl_ledger_gathers_every_bad_line(tmp_path: Path) -> None:
    lines = jsonl_lines(base())
    lines[2] = lines[2].replace('"P3"', '"P9"', 1)
    path = tmp_path / "ledger.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LedgerError) as failed:
        load_jsonl_ledger(path)
    assert failed.value.problems == [
        Problem("accounts[1].charges[0].patient", "P3 is not a patient of account A2 (line 3)")
    ]


def test_jsonl_and_json_give_the_same_ledger(tmp_path: Path) -> None:
    ledger = ledger_from_document(base(), "t")
    path = tmp_path / "ledger.jsonl"
    write_jsonl(ledger.header(), ledger.accounts, path)
    assert path.read_text().count("\n") == 3
    assert read_ledger_for_cli(path, "jsonl") == ledger
    assert dump_jsonl_line(ledger.accounts[1]).startswith('{"id":"A2","patients":[{"id":"P3"')


def test_an_unknown_ledger_format() -> None:
    with pytest.raises(UsageError) as failed:
        read_ledger_for_cli("x.csv", "csv")
    assert str(failed.value) == 'unknown ledger format "csv"; formats available: json, jsonl'


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------
def test_dump_writes_amounts_as_two_place_strings_with_two_space_indent() -> None:
    doc = base()
    account0(doc)["charges"][0]["amount"] = JsonInt(100)  # the number 100, as JSON reads it
    text = dump_ledger(ledger_from_document(doc, "t"))
    assert text.startswith('{\n  "format": "paysplit-ledger/1",\n  "practice": {\n    "name"')
    assert text.endswith("}\n")
    written = json.loads(text)
    charge = written["accounts"][0]["charges"][0]
    assert charge["amount"] == "100.00"
    assert charge["insurance_estimate"] == "0.00"
    assert written["accounts"][0]["adjustments"][0]["amount"] == "-20.00"
    assert "extra" not in charge


def test_round_trip_keeps_record_order_and_extra_untouched() -> None:
    extra_text = (
        '{"weird": 1.50, "big": 123456789012345678901234567890, "exp": 1e5, '
        '"list": [1, {"b": null, "a": true}], "text": "Zo\\u00eb \\"q\\"", "empty": {}}'
    )
    doc = base()
    account0(doc)["charges"].reverse()  # a ledger order that is not by date or id
    text = json.dumps(doc).replace('"status": "due_insurance"',
                                   f'"status": "due_insurance", "extra": {extra_text}')  # fmt: skip
    ledger = parse_ledger_text(text, "t")
    assert [c.id for c in ledger.accounts[0].charges] == ["C2", "C1"]
    out = dump_ledger(ledger)
    assert '"weird": 1.50' in out
    assert '"big": 123456789012345678901234567890' in out
    assert '"exp": 1e5' in out
    assert '"text": "Zoë \\"q\\""' in out
    again = parse_ledger_text(out, "again")
    assert again == ledger
    assert dump_ledger(again) == out
    assert json.loads(out)["accounts"][0]["charges"][0]["extra"] == json.loads(extra_text)


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.json")))
def test_examples_round_trip(name: str) -> None:
    ledger = load_ledger(EXAMPLES / name)
    text = dump_ledger(ledger)
    assert parse_ledger_text(text, name) == ledger
    assert dump_ledger(parse_ledger_text(text, name)) == text


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_replaces_the_file_and_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.write_text("old")
    os.chmod(path, 0o640)
    ledger = ledger_from_document(base(), "t")
    write_ledger(ledger, path)
    assert load_ledger(path) == ledger
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert leftovers(tmp_path) == []


def test_a_failed_serialisation_leaves_the_old_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.write_text("the old ledger")
    good = ledger_from_document(base(), "t")
    charge = good.accounts[0].charges[0].model_copy(update={"extra": {"bad": object()}})
    account = good.accounts[0].model_copy(update={"charges": (charge,)})
    broken = good.model_copy(update={"accounts": (account,)})
    with pytest.raises(TypeError, match="cannot write a object value into a ledger"):
        write_ledger(broken, path)
    assert path.read_text() == "the old ledger"
    assert leftovers(tmp_path) == []


def test_a_failure_while_writing_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.json"
    path.write_text("the old ledger")

    def disk_full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ledger_io.os, "fsync", disk_full)
    with pytest.raises(LedgerWriteError) as failed:
        write_ledger(ledger_from_document(base(), "t"), path)
    assert str(failed.value) == (
        f"cannot write {path}: No space left on device; the old file is unchanged"
    )
    assert path.read_text() == "the old ledger"
    assert leftovers(tmp_path) == []


def test_a_jsonl_stream_that_fails_midway_leaves_the_old_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text("old lines\n")
    ledger = ledger_from_document(base(), "t")

    def accounts() -> Any:
        yield ledger.accounts[0]
        raise RuntimeError("worker died")

    with pytest.raises(RuntimeError, match="worker died"):
        write_jsonl(ledger.header(), accounts(), path)
    assert path.read_text() == "old lines\n"
    assert leftovers(tmp_path) == []


def test_writing_into_a_missing_folder(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "ledger.json"
    with pytest.raises(LedgerWriteError) as failed:
        write_ledger(ledger_from_document(base(), "t"), path)
    assert str(failed.value) == f"cannot write {path}: No such file or directory"
    assert failed.value.exit_code == 2


def test_ledger_header_is_the_ledger_without_accounts() -> None:
    ledger: Ledger = ledger_from_document(base(), "t")
    line = json.loads(dump_jsonl_line(ledger.header()))
    assert "accounts" not in line
    assert line["providers"] == [{"id": "DR1", "name": "Dr One"}, {"id": "DR2", "name": "Dr Two"}]
