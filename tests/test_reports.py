"""Reports reproduce the seeds' own figures, to the cent, from the example ledgers.

Test names say which seed figure they reproduce: ``000`` is DrChrono's article on
allocated and unallocated patient payments, ``001`` the therapy practice's insurance
payment, ``003`` Oasis' unallocated credit tables.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from paysplit.errors import UsageError
from paysplit.ledger import Ledger
from paysplit.ledger_io import ledger_from_document, load_ledger
from paysplit.money import parse_amount
from paysplit.reports import (
    aging,
    appointment_balances,
    bucket_of,
    dashboard,
    patient_dashboards,
    payments_report,
    provider_balances,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "ledgers"


@cache
def example(name: str) -> Ledger:
    return load_ledger(EXAMPLES / name)


def cents(text: str) -> int:
    return parse_amount(text)


DRCHRONO = "drchrono_jenny_harris.json"
OASIS = "oasis_mr_smith.json"

# --------------------------------------------------------------------------
# 000: the patient dashboard
# --------------------------------------------------------------------------
DASHBOARD_FIGURES = [
    # (seed figure, patient, figure, value)
    ("000_jenny_harris_total_paid_325_00", "P1", "total_paid", "325.00"),
    ("000_jenny_harris_allocated_0_00", "P1", "allocated", "0.00"),
    ("000_jenny_harris_unallocated_325_00", "P1", "unallocated", "325.00"),
    ("000_jenny_harris_statement_balance_275_00", "P1", "statement_balance", "275.00"),
    ("000_jenny_harris_total_balance_minus_50_00", "P1", "total_balance", "-50.00"),
    ("000_jenny_harris_responsibility_275_00", "P1", "responsibility", "275.00"),
    ("000_dashboard_total_paid_200_00", "P3", "total_paid", "200.00"),
    ("000_dashboard_allocated_150_00", "P3", "allocated", "150.00"),
    ("000_dashboard_unallocated_50_00", "P3", "unallocated", "50.00"),
    ("000_dashboard_statement_balance_50_00", "P3", "statement_balance", "50.00"),
    ("000_dashboard_total_balance_0_00", "P3", "total_balance", "0.00"),
    ("000_after_refund_jen_harris_total_paid_0_00", "P5", "total_paid", "0.00"),
    ("000_after_refund_jen_harris_allocated_0_00", "P5", "allocated", "0.00"),
    ("000_after_refund_jen_harris_unallocated_0_00", "P5", "unallocated", "0.00"),
    ("000_after_refund_jen_harris_statement_balance_750_00", "P5", "statement_balance", "750.00"),
    ("000_after_refund_jen_harris_total_balance_750_00", "P5", "total_balance", "750.00"),
    ("000_live_claims_feed_patients_unallocated_payment_200_00", "P2", "unallocated", "200.00"),
    ("000_live_claims_feed_patients_unallocated_payment_70_00", "P4", "unallocated", "70.00"),
]


@pytest.mark.parametrize(
    ("patient", "figure", "value"),
    [case[1:] for case in DASHBOARD_FIGURES],
    ids=[case[0] for case in DASHBOARD_FIGURES],
)
def test_000_dashboard_figure(patient: str, figure: str, value: str) -> None:
    board = dashboard(example(DRCHRONO), patient_id=patient)
    assert getattr(board, figure) == cents(value)


def test_000_jenny_harris_dashboard_json_is_the_cli_example() -> None:
    assert dashboard(example(DRCHRONO), patient_id="P1").to_json() == {
        "patient": "P1",
        "total_paid": "325.00",
        "allocated": "0.00",
        "unallocated": "325.00",
        "responsibility": "275.00",
        "statement_balance": "275.00",
        "total_balance": "-50.00",
    }


def test_000_jenny_harris_unallocated_column_100_50_175() -> None:
    rows = payments_report(example(DRCHRONO), "HARRIS").rows
    patient_rows = [(r.id, r.amount, r.unallocated) for r in rows if r.payer == "patient"]
    assert patient_rows == [("PAY1", 10000, 10000), ("PAY2", 5000, 5000), ("PAY3", 17500, 17500)]


def test_000_refund_of_minus_100_leaves_the_unallocated_payment_at_0_00() -> None:
    report = payments_report(example(DRCHRONO), "JEN")
    credit, refund = report.row("PAY9"), report.row("RF1")
    assert (credit.amount, credit.refunded, credit.unallocated) == (10000, 10000, 0)
    assert (refund.amount, refund.allocated, refund.refunded, refund.unallocated) == (
        -10000,
        0,
        0,
        0,
    )


def test_000_live_claims_feed_appt_does_not_have_unallocated_payment() -> None:
    rows = {r.appointment: r for r in appointment_balances(example(DRCHRONO), "SAMPLE")}
    assert rows["AP6"].unallocated_payment == 0


def test_000_live_claims_feed_appts_unallocated_payment_20_00() -> None:
    (row,) = appointment_balances(example(DRCHRONO), "GREEN")
    assert (row.appointment, row.charges, row.unallocated_payment) == ("AP13", 0, 2000)


@pytest.mark.parametrize(
    ("appointment", "start", "balance", "statuses"),
    [
        ("AP6", "2025-01-22T11:30:00", "100.00", ("due_patient",)),
        ("AP7", "2024-11-18T09:25:00", "-15.00", ("due_insurance",)),
        ("AP8", "2024-07-18T14:50:00", "0.00", ("due_insurance",)),
        ("AP9", "2024-07-18T13:55:00", "0.00", ()),
        ("AP10", "2023-08-07T14:20:00", "0.00", ("due_insurance",)),
    ],
    ids=[
        "000_1_22_2025_11_30AM_100_00_balance_due",
        "000_11_18_2024_09_25AM_minus_15_00_bill_insurance",
        "000_7_18_2024_02_50PM_0_00_bill_insurance",
        "000_7_18_2024_01_55PM_0_00",
        "000_8_07_2023_02_20PM_0_00_bill_insurance",
    ],
)
def test_000_appointment_list(
    appointment: str, start: str, balance: str, statuses: tuple[str, ...]
) -> None:
    rows = {r.appointment: r for r in appointment_balances(example(DRCHRONO), "SAMPLE")}
    row = rows[appointment]
    assert row.start == dt.datetime.fromisoformat(start)
    assert row.balance == cents(balance)
    assert row.statuses == statuses


def test_000_last_screenshot_0_0_0_200_100_is_not_reproduced() -> None:
    # After the article's "Move" steps: paid +100 and -100, responsibility 200. Its own
    # definition (responsibility - total paid) gives a total balance of 200, not 100.
    doc: dict[str, Any] = {
        "format": "paysplit-ledger/1",
        "practice": {"name": "DrChrono", "currency": "USD"},
        "providers": [{"id": "DR1"}],
        "accounts": [
            {
                "id": "A",
                "patients": [{"id": "P", "name": "Payment Sample"}],
                "charges": [{"id": "C", "patient": "P", "provider": "DR1", "date": "2022-06-07",
                             "amount": "200.00", "status": "due_patient"}],
                "payments": [
                    {"id": "PAY", "patient": "P", "payer": "patient", "date": "2022-06-07",
                     "type": "payment", "amount": "100.00"},
                    {"id": "RF", "patient": "P", "payer": "patient", "date": "2022-06-07",
                     "type": "refund", "amount": "-100.00", "refunds": "PAY"},
                ],
            }
        ],
    }  # fmt: skip
    board = dashboard(ledger_from_document(doc, "t"), patient_id="P")
    shown = (board.total_paid, board.allocated, board.unallocated)
    assert shown == (0, 0, 0)
    assert (board.statement_balance, board.total_balance) == (20000, 20000)


def test_000_worked_check_statement_and_total_from_paid_allocated_responsibility() -> None:
    board = dashboard(example(DRCHRONO), patient_id="P1")
    assert board.statement_balance == board.responsibility - board.allocated
    assert board.total_balance == board.responsibility - board.total_paid


# --------------------------------------------------------------------------
# 003: Oasis' balances per doctor
# --------------------------------------------------------------------------
OASIS_TABLES = [
    # (seed figure, account, rows as (provider, invoices, unallocated credit, net))
    (
        "003_mr_smith_invoiced_30_dr1_20_dr2",
        "INVOICED",
        [("DR1", "30.00", "0.00", "30.00"), ("DR2", "20.00", "0.00", "20.00"),
         ("all", "50.00", "0.00", "50.00")],
    ),
    (
        "003_mr_smith_pays_10_against_dr1",
        "PAID_10_DR1",
        [("DR1", "30.00", "10.00", "20.00"), ("DR2", "20.00", "0.00", "20.00"),
         ("all", "50.00", "10.00", "40.00")],
    ),
    (
        "003_cross_doctor_40_against_dr2_before_allocation",
        "PAID_40_DR2",
        [("DR1", "30.00", "0.00", "30.00"), ("DR2", "20.00", "40.00", "-20.00"),
         ("all", "50.00", "40.00", "10.00")],
    ),
    (
        "003_cross_doctor_takes_up_20_against_dr2",
        "TOOK_UP_20_DR2",
        [("DR1", "30.00", "0.00", "30.00"), ("DR2", "0.00", "20.00", "-20.00"),
         ("all", "30.00", "20.00", "10.00")],
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("account", "rows"),
    [case[1:] for case in OASIS_TABLES],
    ids=[case[0] for case in OASIS_TABLES],
)
def test_003_balances_table(account: str, rows: list[tuple[str, str, str, str]]) -> None:
    table = provider_balances(example(OASIS), account)
    assert [(r.provider, r.invoices, r.unallocated_credit, r.net) for r in table.rows] == [
        (p, cents(i), cents(u), cents(n)) for p, i, u, n in rows
    ]


OASIS_FIGURES = [
    (f"{seed}_{row[0].lower()}_{column}_{value.replace('-', 'minus_').replace('.', '_')}",
     account, row[0], column, value)
    for seed, account, rows in OASIS_TABLES
    for row in rows
    for column, value in zip(("invoices", "unallocated_credit", "net"), row[1:], strict=True)
]  # fmt: skip


@pytest.mark.parametrize(
    ("account", "provider", "column", "value"),
    [case[1:] for case in OASIS_FIGURES],
    ids=[case[0] for case in OASIS_FIGURES],
)
def test_003_figure(account: str, provider: str, column: str, value: str) -> None:
    row = provider_balances(example(OASIS), account).row(provider)
    assert getattr(row, column) == cents(value)


def test_003_table_json_is_the_cli_shape() -> None:
    assert provider_balances(example(OASIS), "PAID_40_DR2").to_json() == {
        "account": "PAID_40_DR2",
        "rows": [
            {"provider": "DR1", "invoices": "30.00", "unallocated_credit": "0.00", "net": "30.00"},
            {"provider": "DR2", "invoices": "20.00", "unallocated_credit": "40.00",
             "net": "-20.00"},
            {"provider": "all", "invoices": "50.00", "unallocated_credit": "40.00", "net": "10.00"},
        ],
    }  # fmt: skip


def test_003_aged_debtors_shows_the_unallocated_credit() -> None:
    report = aging(example(OASIS))
    assert report.as_of == dt.date(2025, 3, 1)
    assert [(r.account, r.outstanding, r.unallocated_credit, r.net) for r in report.rows] == [
        ("INVOICED", 5000, 0, 5000),
        ("PAID_10_DR1", 5000, 1000, 4000),
        ("PAID_40_DR2", 5000, 4000, 1000),
        ("TOOK_UP_20_DR2", 3000, 2000, 1000),
    ]
    assert (report.total.outstanding, report.total.unallocated_credit, report.total.net) == (
        18000,
        7000,
        11000,
    )


# --------------------------------------------------------------------------
# 001: an insurance payment's unallocated amount
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("account", "allocated", "unallocated", "negative"),
    [
        ("NEW", "0.00", "200.00", False),
        ("HALF", "100.00", "100.00", False),
        ("DONE", "200.00", "0.00", False),
        ("OVER", "300.00", "-100.00", True),
    ],
    ids=[
        "001_unallocated_starts_at_the_payment_200_00",
        "001_after_100_to_the_first_session_100_00",
        "001_after_the_last_100_0_00",
        "001_allocating_300_of_200_is_negative_minus_100_00",
    ],
)
def test_001_insurance_payment(
    account: str, allocated: str, unallocated: str, negative: bool
) -> None:
    (row,) = payments_report(example("therapy_insurance.json"), account).rows
    assert (row.amount, row.allocated, row.unallocated, row.negative) == (
        20000,
        cents(allocated),
        cents(unallocated),
        negative,
    )


def test_001_payments_json_flags_the_negative() -> None:
    report = payments_report(example("therapy_insurance.json"), "OVER")
    assert report.to_json() == {
        "payments": [
            {"id": "INS4", "patient": "T4", "payer": "insurance", "provider": "TH1",
             "amount": "200.00", "allocated": "300.00", "refunded": "0.00",
             "unallocated": "-100.00", "negative": True, "void": False}
        ]
    }  # fmt: skip


# --------------------------------------------------------------------------
# The bundled example and the other seeds' ledgers
# --------------------------------------------------------------------------
def test_smith_family_dashboards() -> None:
    boards = {b.id: b.to_json() for b in patient_dashboards(example("smith_family.json"))}
    assert boards == {
        "P1": {"patient": "P1", "total_paid": "265.00", "allocated": "65.00",
               "unallocated": "200.00", "responsibility": "240.00",
               "statement_balance": "175.00", "total_balance": "-25.00"},
        "P2": {"patient": "P2", "total_paid": "300.00", "allocated": "300.00",
               "unallocated": "0.00", "responsibility": "1252.00",
               "statement_balance": "952.00", "total_balance": "952.00"},
    }  # fmt: skip
    assert dashboard(example("smith_family.json"), account_id="SMITH").to_json() == {
        "account": "SMITH", "total_paid": "565.00", "allocated": "365.00",
        "unallocated": "200.00", "responsibility": "1492.00", "statement_balance": "1127.00",
        "total_balance": "927.00",
    }  # fmt: skip


def test_smith_family_per_provider_and_aging_agree() -> None:
    book = example("smith_family.json")
    table = provider_balances(book, "SMITH")
    assert [(r.provider, r.invoices, r.unallocated_credit, r.net) for r in table.rows] == [
        ("DR1", 113000, 22000, 91000),
        ("DR2", 20500, 9600, 10900),
        ("all", 133500, 31600, 101900),
    ]
    assert aging(book).to_json() == {
        "as_of": "2025-03-01",
        "accounts": [{"account": "SMITH", "current": "85.00", "31_60": "145.00",
                      "61_90": "50.00", "over_90": "1055.00", "outstanding": "1335.00",
                      "unallocated_credit": "316.00", "net": "1019.00"}],
        "total": {"current": "85.00", "31_60": "145.00", "61_90": "50.00",
                  "over_90": "1055.00", "outstanding": "1335.00",
                  "unallocated_credit": "316.00", "net": "1019.00"},
    }  # fmt: skip


def test_002_unattached_negative_adjustment_is_unallocated_credit() -> None:
    table = provider_balances(example("open_dental_unearned.json"), "NGUYEN")
    # PR6 110.00 less its attached -10.00; PP4's 200.00 and AD1's 25.00 are credit.
    assert [(r.provider, r.invoices, r.unallocated_credit) for r in table.rows] == [
        ("DOC1", 22000, 22500),
        ("all", 22000, 22500),
    ]


def test_002_credit_with_no_provider_gets_a_none_row() -> None:
    table = provider_balances(example("open_dental_unearned.json"), "MILLER")
    assert [(r.provider, r.unallocated_credit) for r in table.rows] == [
        ("DOC1", 30500),
        ("DOC2", 15000),
        ("HYG1", 0),
        ("none", 3000),
        ("all", 48500),
    ]


def test_004_credit_annotation_moves_credit_to_its_provider() -> None:
    book = example("apply_automatically.json")
    doc = book.model_dump(mode="json")
    doc["accounts"][0]["payments"][0]["credit"]["provider"] = "DR2"
    moved = provider_balances(ledger_from_document(doc, "t"), "LOPEZ")
    before = provider_balances(book, "LOPEZ")
    assert before.row("DR1").unallocated_credit - moved.row("DR1").unallocated_credit == 3000
    assert moved.row("DR2").unallocated_credit - before.row("DR2").unallocated_credit == 3000


# --------------------------------------------------------------------------
# Rules of the reports themselves
# --------------------------------------------------------------------------
def small(**account: Any) -> Ledger:
    doc = {
        "format": "paysplit-ledger/1",
        "practice": {"name": "Smile Dental", "currency": "USD", "as_of": "2025-03-01"},
        "providers": [{"id": "DR1"}, {"id": "DR2"}],
        "accounts": [{"id": "A1", "patients": [{"id": "P1"}], **account}],
    }
    return ledger_from_document(doc, "t")


def charge(cid: str, date: str, amount: str, provider: str = "DR1") -> dict[str, Any]:
    return {"id": cid, "patient": "P1", "provider": provider, "date": date, "amount": amount,
            "status": "due_patient"}  # fmt: skip


def test_no_none_row_when_every_payment_has_a_provider() -> None:
    book = small(
        charges=[charge("C1", "2025-01-01", "10.00")],
        payments=[{"id": "PAY1", "patient": "P1", "payer": "patient", "provider": "DR1",
                   "date": "2025-01-01", "type": "payment", "amount": "5.00"}],
    )  # fmt: skip
    assert [r.provider for r in provider_balances(book, "A1").rows] == ["DR1", "all"]


def test_a_void_payment_counts_nowhere_in_any_report() -> None:
    book = small(
        charges=[charge("C1", "2025-01-01", "10.00")],
        payments=[{"id": "PAY1", "patient": "P1", "payer": "patient", "date": "2025-01-01",
                   "type": "payment", "amount": "5.00", "void": True}],
        splits=[{"id": "S1", "payment": "PAY1", "charge": "C1", "amount": "5.00"}],
    )  # fmt: skip
    assert [r.provider for r in provider_balances(book, "A1").rows] == ["DR1", "all"]
    assert provider_balances(book, "A1").row("all").invoices == 1000
    board = dashboard(book, patient_id="P1")
    assert (board.total_paid, board.allocated, board.responsibility) == (0, 0, 1000)
    row = payments_report(book).row("PAY1")
    assert (row.void, row.allocated, row.unallocated) == (True, 0, 0)
    assert aging(book).row("A1").unallocated_credit == 0


@pytest.mark.parametrize(
    ("days", "bucket"),
    [(-3, "current"), (0, "current"), (30, "current"), (31, "31_60"), (60, "31_60"),
     (61, "61_90"), (90, "61_90"), (91, "over_90"), (400, "over_90")],
)  # fmt: skip
def test_aging_buckets(days: int, bucket: str) -> None:
    assert bucket_of(days) == bucket


def test_aging_places_each_balance_and_takes_an_as_of_date() -> None:
    book = small(
        charges=[charge("C1", "2025-02-28", "1.00"), charge("C2", "2025-01-15", "2.00"),
                 charge("C3", "2024-12-20", "4.00"), charge("C4", "2024-10-01", "8.00")],
    )  # fmt: skip
    assert aging(book).row("A1").buckets == {
        "current": 100,
        "31_60": 200,
        "61_90": 400,
        "over_90": 800,
    }
    later = aging(book, dt.date(2025, 4, 15)).row("A1").buckets
    assert later == {"current": 0, "31_60": 100, "61_90": 200, "over_90": 1200}


def test_dashboard_of_the_practice_and_wrong_selections() -> None:
    book = example(DRCHRONO)
    practice = dashboard(book)
    assert (practice.scope, practice.id) == ("practice", "DrChrono sample clinic")
    assert practice.total_paid == sum(b.total_paid for b in patient_dashboards(book))
    with pytest.raises(UsageError, match="there is no patient P99 in this ledger"):
        dashboard(book, patient_id="P99")
    with pytest.raises(UsageError, match="there is no account NOPE in this ledger"):
        provider_balances(book, "NOPE")
    with pytest.raises(UsageError, match="a dashboard is of an account or of a patient, not both"):
        dashboard(book, account_id="HARRIS", patient_id="P1")


def test_smith_family_spec_scenario_pay9_leaves_a_statement_balance_of_25_00() -> None:
    # spec/scenarios.md: PAY9 150.00 pays C1 100.00 and C2 50.00; P1's statement is 25.00
    # (the returned-cheque fee C4, which due_patient skips without "include debits").
    doc = example("smith_family.json").model_dump(mode="json")
    account = doc["accounts"][0]
    account["payments"].append(
        {"id": "PAY9", "patient": "P1", "payer": "patient", "provider": "DR1",
         "date": "2025-03-01", "type": "payment", "amount": "150.00"}
    )  # fmt: skip
    account["splits"] += [
        {"id": "PAY9-1", "payment": "PAY9", "charge": "C1", "amount": "100.00"},
        {"id": "PAY9-2", "payment": "PAY9", "charge": "C2", "amount": "50.00"},
    ]
    board = dashboard(ledger_from_document(doc, "after PAY9"), patient_id="P1")
    assert board.statement_balance == 2500
