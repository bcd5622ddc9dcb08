"""The command line end to end: real rule files, real plugins, the example ledgers.

These are the "must show" checks of the engine, as a practice user meets them:
exit codes, the reason printed, and a ledger file that is written only when
the operation went through.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from paysplit.cli import main
from paysplit.ledger_io import load_ledger

ROOT = Path(__file__).resolve().parent.parent
LEDGERS = ROOT / "examples" / "ledgers"
RULES = ROOT / "rules"


def copy_of(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copy(LEDGERS / name, target)
    return target


def test_explain_names_the_clause_and_reason_for_every_charge_not_paid(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "apply",
            "--ledger",
            str(LEDGERS / "smith_family.json"),
            "--rules",
            str(RULES / "apply_automatically.rules"),
            "--rule",
            "due_patient",
            "--payment",
            "PAY1",
            "--explain",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    where = f"{RULES / 'apply_automatically.rules'}:7:18"
    reason = "status due_insurance is not due_patient or pending_patient"
    assert f"C3 skipped: {reason} ({where})" in out
    assert "C1 paid 100.00 from PAY1" in out
    assert "C2 paid 50.00 from PAY1" in out


def test_a_manual_cross_doctor_allocation_exits_3_naming_both_providers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = copy_of("oasis_mr_smith.json", tmp_path)
    before = ledger.read_bytes()
    code = main(
        [
            "allocate",
            "--ledger",
            str(ledger),
            "--rules",
            str(RULES / "oasis.rules"),
            "--payment",
            "PAY2",
            "--charge",
            "INV5",
            "--amount",
            "10.00",
            "--in-place",
        ]
    )
    captured = capsys.readouterr()
    assert code == 3
    assert "credit of DR2 cannot pay DR1's charge INV5" in captured.out + captured.err
    assert ledger.read_bytes() == before


def test_a_refund_larger_than_the_unallocated_amount_is_refused_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = copy_of("drchrono_jenny_harris.json", tmp_path)
    before = ledger.read_bytes()
    code = main(["refund", "--ledger", str(ledger), "--payment", "PAY1", "--amount", "150"])
    code_in_place = main(
        ["refund", "--ledger", str(ledger), "--payment", "PAY1", "--amount", "150", "--in-place"]
    )
    err = capsys.readouterr().err
    assert code == code_in_place == 2
    assert "100.00" in err and "PAY1" in err
    assert "Traceback" not in err
    assert ledger.read_bytes() == before


def test_a_refund_needs_no_rule_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = copy_of("drchrono_jenny_harris.json", tmp_path)
    code = main(
        ["refund", "--ledger", str(ledger), "--payment", "PAY1", "--amount", "-100", "--in-place"]
    )
    capsys.readouterr()
    assert code == 0
    account = next(a for a in load_ledger(ledger).accounts if a.id == "HARRIS")
    (refund,) = [p for p in account.payments if p.type == "refund"]
    assert (refund.refunds, refund.amount, refund.patient) == ("PAY1", -10000, "P1")


def test_without_rule_files_a_manual_over_allocation_is_still_refused_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The plugins' default settings (negative unallocated block) apply with no --rules."""
    ledger = copy_of("drchrono_jenny_harris.json", tmp_path)
    before = ledger.read_bytes()
    code = main(
        [
            "allocate",
            "--ledger",
            str(ledger),
            "--payment",
            "PAY2",
            "--charge",
            "C1",
            "--amount",
            "80.00",
            "--in-place",
            "--json",
        ]
    )
    plan: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert code == 3
    assert plan["blocked"]["reason"].startswith(
        "allocating 80.00 of payment PAY2 would leave -30.00 unallocated"
    )
    assert plan["splits"] == []
    assert ledger.read_bytes() == before
