"""Unit tests of paysplit-dental-extras (the scenarios in ../rules test it end to end)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from paysplit_dental_extras import (
    NoStaleCreditForCollection,
    OnlyCodes,
    SkipCodes,
    paysplit_guards,
    paysplit_phrases,
    paysplit_vocabulary,
)

from paysplit.compiler import check_files
from paysplit.ledger import Charge, Payment
from paysplit.plugin_manager import load
from paysplit.policy import ProposedSplit, Refuse, Target

RULES = Path(__file__).resolve().parent.parent / "rules" / "smile_dental.rules"
RUN_DATE = dt.date(2025, 3, 1)


def charge(status: str = "collection", code: str = "D0150") -> Charge:
    return Charge(
        id="C1",
        patient="P1",
        provider="DR1",
        date=dt.date(2024, 6, 1),
        code=code,
        amount="120.00",
        status=status,
    )


def target(of: Charge) -> Target:
    return Target(
        charge=of,
        installment=None,
        plan=None,
        balance=of.amount,
        patient_balance=of.amount,
        allocatable=of.amount,
        age=(RUN_DATE - of.date).days,
        position=0,
    )


def proposed(paid_on: dt.date, of: Charge) -> ProposedSplit:
    payment = Payment(
        id="PAY1", patient="P1", payer="patient", date=paid_on, type="payment", amount="80.00"
    )
    return ProposedSplit(
        payment=payment,
        target=target(of),
        amount=8000,
        credit_left=8000,
        manual=False,
        run_date=RUN_DATE,
    )


def test_the_phrases_and_the_guard_are_declared() -> None:
    assert [p.pattern for p in paysplit_phrases()] == [
        "skip codes {codes:words}",
        "only codes {codes:words}",
    ]
    (guard,) = paysplit_guards()
    assert guard.pattern == "no stale credit for collection {days:days}"
    assert guard.where == "both"
    assert "disputed" in paysplit_vocabulary().statuses


def test_the_age_of_credit_is_counted_to_the_operations_run_date() -> None:
    guard = NoStaleCreditForCollection(90)
    fresh = proposed(dt.date(2025, 1, 1), charge())  # 59 days before RUN_DATE
    assert guard.check_split(fresh) is None
    stale = ProposedSplit(
        payment=fresh.payment,
        target=fresh.target,
        amount=fresh.amount,
        credit_left=fresh.credit_left,
        manual=False,
        run_date=dt.date(2025, 6, 1),  # the same credit, run three months later
    )
    verdict = guard.check_split(stale)
    assert isinstance(verdict, Refuse) and "151 days old" in verdict.reason


@pytest.mark.parametrize("status", ["collection", "collection_agency", "disputed"])
def test_stale_credit_may_not_pay_a_charge_at_collection(status: str) -> None:
    guard = NoStaleCreditForCollection(90)
    verdict = guard.check_split(proposed(dt.date(2024, 9, 15), charge(status)))
    assert isinstance(verdict, Refuse)
    assert "167 days old (more than 90)" in verdict.reason


def test_credit_exactly_n_days_old_is_not_stale() -> None:
    guard = NoStaleCreditForCollection(90)
    assert guard.check_split(proposed(RUN_DATE - dt.timedelta(days=90), charge())) is None
    verdict = guard.check_split(proposed(RUN_DATE - dt.timedelta(days=91), charge()))
    assert isinstance(verdict, Refuse)


def test_stale_credit_still_pays_ordinary_charges() -> None:
    guard = NoStaleCreditForCollection(90)
    assert guard.check_split(proposed(dt.date(2023, 1, 1), charge("due_patient"))) is None


def test_skip_codes_and_only_codes() -> None:
    fee = target(charge("due_patient", code="D9986"))
    filling = target(charge("due_patient", code="D2391"))
    skip = SkipCodes(frozenset({"D9986", "D9987"}))
    assert skip.skip_reason(filling, None) is None
    assert skip.skip_reason(fee, None) == (
        "C1 has code D9986, which this rule never pays automatically"
    )
    only = OnlyCodes(frozenset({"D2391"}))
    assert only.skip_reason(filling, None) is None
    assert only.skip_reason(fee, None) == "C1 has D9986; this rule pays only D2391"
    for clause in (skip, only):  # the charge forms say what skip_reason says
        form = clause.charge_form()
        for view in (fee, filling):
            assert form(view.charge) == clause.skip_reason(view, None)
    keeps = skip.charge_predicate()  # and the predicate keeps what the form keeps
    assert [keeps(fee.charge), keeps(filling.charge)] == [False, True]


def test_the_rule_file_checks_clean_with_the_plugin_installed() -> None:
    result = check_files([RULES], load())
    assert [d.render() for d in result.errors] == []
    assert result.ok


# --- the CSV export reader (--ledger-format dental-csv) --------------------------------
EXPORT = Path(__file__).resolve().parent.parent / "ledgers" / "smile_export.csv"


def test_the_csv_export_reads_as_a_validated_ledger(capsys: pytest.CaptureFixture[str]) -> None:
    from paysplit.cli import main

    code = main(["payments", "--ledger", str(EXPORT), "--ledger-format", "dental-csv", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(p["id"], p["amount"], p["unallocated"]) for p in report["payments"]] == [
        ("PAY1", "150.00", "150.00")
    ]


def test_a_bad_row_in_the_export_is_one_clear_error_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from paysplit.cli import main

    broken = tmp_path / "broken.csv"
    text = EXPORT.read_text(encoding="utf-8")
    broken.write_text(text.replace("payment,A1,PAY1", "refund,A1,PAY1"), encoding="utf-8")
    code = main(["validate", "--ledger", str(broken), "--ledger-format", "dental-csv"])
    err = capsys.readouterr().err
    assert code == 2
    assert "broken.csv line 7: record must be patient, charge or payment, not 'refund'" in err
    assert "Traceback" not in err


def test_an_amount_with_three_places_is_reported_at_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from paysplit.cli import main

    broken = tmp_path / "broken.csv"
    text = EXPORT.read_text(encoding="utf-8")
    broken.write_text(text.replace("100.00", "100.005"), encoding="utf-8")
    code = main(["validate", "--ledger", str(broken), "--ledger-format", "dental-csv"])
    err = capsys.readouterr().err
    assert code == 2
    assert "accounts[0].charges[0].amount: 100.005 has more than two decimal places" in err
