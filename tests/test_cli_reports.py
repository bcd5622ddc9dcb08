"""The report verbs from the command line: output, JSON shapes and exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from paysplit.cli import main
from paysplit.ledger_io import load_ledger, write_jsonl

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "ledgers"
SMITH = str(EXAMPLES / "smith_family.json")
DRCHRONO = str(EXAMPLES / "drchrono_jenny_harris.json")
OASIS = str(EXAMPLES / "oasis_mr_smith.json")
THERAPY = str(EXAMPLES / "therapy_insurance.json")

FOUR_MISTAKES = """{
  "format": "paysplit-ledger/1",
  "practice": {"name": "Smile Dental", "currency": "USD"},
  "providers": [{"id": "DR1"}],
  "accounts": [
    {"id": "A1", "patients": [{"id": "P1"}],
     "charges": [
       {"id": "C1", "patient": "P1", "provider": "DR1", "date": "2025-01-22",
        "amount": 12.345, "status": "due_patient"},
       {"id": "C2", "patient": "P1", "provider": "DR1", "date": "2025-01-23",
        "amout": "10.00", "amount": "10.00", "status": "due_patient"}]},
    {"id": "A2", "patients": [{"id": "P2"}],
     "charges": [
       {"id": "C1", "patient": "P2", "provider": "DR1", "date": "2025-01-22",
        "amount": "5.00", "status": "due_patient"}],
     "payments": [
       {"id": "PAY1", "patient": "P9", "payer": "patient", "date": "2025-02-01",
        "type": "payment", "amount": "5.00"}]}
  ]
}
"""

FOUR_PROBLEMS = [
    {"path": "accounts[0].charges[0].amount", "message": "12.345 has more than two decimal places"},
    {"path": "accounts[0].charges[1].amout",
     "message": 'unknown field "amout" (did you mean "amount"?)'},
    {"path": "accounts[1].charges[0].id",
     "message": "C1 is used twice (also at accounts[0].charges[0].id)"},
    {"path": "accounts[1].payments[0].patient", "message": "P9 is not a patient of account A2"},
]  # fmt: skip

BROKEN_INVARIANT = """{
  "format": "paysplit-ledger/1",
  "practice": {"name": "Smile Dental", "currency": "USD"},
  "providers": [{"id": "DR1"}],
  "accounts": [
    {"id": "A1", "patients": [{"id": "P1"}],
     "charges": [{"id": "C1", "patient": "P1", "provider": "DR1", "date": "2025-01-22",
                  "amount": "10.00", "status": "due_patient"}],
     "payments": [{"id": "PAY1", "patient": "P1", "payer": "patient", "date": "2025-02-01",
                   "type": "payment", "amount": "5.00"}],
     "splits": [{"id": "S1", "payment": "PAY1", "charge": "C1", "amount": "0.00"}]}
  ]
}
"""


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code, out, _ = run(capsys, *args, "--json")
    return code, json.loads(out)


# --------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------
def test_validate_a_sound_ledger(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", "--ledger", SMITH)
    assert (code, err) == (0, "")
    assert out == (
        f"{SMITH}: a valid ledger (1 account, 2 patients, 8 charges, 1 adjustment, 4 payments, "
        "1 plan, 2 splits); every invariant holds\n"
    )


def test_validate_json_of_a_sound_ledger(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_json(capsys, "validate", "--ledger", SMITH) == (
        0,
        {
            "file": SMITH,
            "valid": True,
            "errors": [],
            "counts": {"accounts": 1, "patients": 2, "charges": 8, "adjustments": 1,
                       "payments": 4, "plans": 1, "splits": 2},
        },
    )  # fmt: skip


def test_validate_the_four_mistake_ledger_exits_2_with_every_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "four.json"
    path.write_text(FOUR_MISTAKES)
    code, out, err = run(capsys, "validate", "--ledger", str(path))
    assert (code, out) == (2, "")
    assert err == (
        f"error: {path} cannot be loaded (4 problems):\n"
        + "".join(f"  {p['path']}: {p['message']}\n" for p in FOUR_PROBLEMS)
    )
    assert "Traceback" not in err


def test_validate_json_of_the_four_mistake_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "four.json"
    path.write_text(FOUR_MISTAKES)
    code, out, err = run(capsys, "validate", "--json", "--ledger", str(path))
    assert code == 2
    assert json.loads(out) == {"file": str(path), "errors": FOUR_PROBLEMS}
    assert all(p["path"] in err for p in FOUR_PROBLEMS)


def test_validate_a_broken_invariant_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "zero.json"
    path.write_text(BROKEN_INVARIANT)
    code, out, err = run(capsys, "validate", "--ledger", str(path))
    assert (code, out) == (1, "")
    assert err == (
        f"error: {path} loads, but breaks 1 invariant:\n"
        "  accounts[0].splits[0].amount: split S1 moves 0.00; a split moves money\n"
    )
    code, document = run_json(capsys, "validate", "--ledger", str(path))
    assert code == 1
    assert document["valid"] is False
    assert document["errors"] == [
        {
            "path": "accounts[0].splits[0].amount",
            "message": "split S1 moves 0.00; a split moves money",
        }
    ]


def test_validate_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.json"
    code, out, err = run(capsys, "validate", "--ledger", str(path))
    assert (code, out) == (2, "")
    assert err == f"error: {path} cannot be loaded (1 problem):\n  no such file\n"


def test_an_unknown_ledger_format(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", "--ledger", SMITH, "--ledger-format", "csv")
    assert (code, out) == (2, "")
    # Installed plugins may add readers after paysplit's own two formats.
    assert err.startswith('error: unknown ledger format "csv"; formats available: json, jsonl')
    assert err.count("\n") == 1


def test_a_jsonl_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = load_ledger(SMITH)
    path = tmp_path / "smith.jsonl"
    write_jsonl(ledger.header(), ledger.accounts, path)
    code, document = run_json(
        capsys, "balances", "--ledger", str(path), "--ledger-format", "jsonl", "--patient", "P1"
    )
    assert code == 0
    assert document["statement_balance"] == "175.00"


# --------------------------------------------------------------------------
# balances
# --------------------------------------------------------------------------
def test_balances_patient_json_is_the_000_dashboard(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_json(capsys, "balances", "--ledger", DRCHRONO, "--patient", "P1") == (
        0,
        {
            "patient": "P1",
            "total_paid": "325.00",
            "allocated": "0.00",
            "unallocated": "325.00",
            "responsibility": "275.00",
            "statement_balance": "275.00",
            "total_balance": "-50.00",
        },
    )


def test_balances_patient_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "balances", "--ledger", DRCHRONO, "--patient", "P1")
    assert code == 0
    (row,) = [line for line in out.splitlines() if "Jenny Harris" in line]
    assert [cell.strip() for cell in row.strip("│ ").split("│")] == [
        "P1 Jenny Harris", "325.00", "0.00", "325.00", "275.00", "275.00", "-50.00",
    ]  # fmt: skip


def test_balances_account_json_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, document = run_json(capsys, "balances", "--ledger", SMITH, "--account", "SMITH")
    assert (code, document["account"], document["statement_balance"]) == (0, "SMITH", "1127.00")
    code, out, _ = run(capsys, "balances", "--ledger", SMITH, "--account", "SMITH")
    assert "P1 John Smith" in out and "P2 Emma Smith" in out and "SMITH (total)" in out


def test_balances_of_every_patient(capsys: pytest.CaptureFixture[str]) -> None:
    code, document = run_json(capsys, "balances", "--ledger", DRCHRONO)
    assert code == 0
    assert [p["patient"] for p in document["patients"]] == ["P1", "P2", "P3", "P4", "P5"]


def test_balances_by_provider_json_is_the_003_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, document = run_json(
        capsys, "balances", "--ledger", OASIS, "--account", "PAID_10_DR1", "--by", "provider"
    )
    assert (code, document) == (
        0,
        {
            "account": "PAID_10_DR1",
            "rows": [
                {"provider": "DR1", "invoices": "30.00", "unallocated_credit": "10.00",
                 "net": "20.00"},
                {"provider": "DR2", "invoices": "20.00", "unallocated_credit": "0.00",
                 "net": "20.00"},
                {"provider": "all", "invoices": "50.00", "unallocated_credit": "10.00",
                 "net": "40.00"},
            ],
        },
    )  # fmt: skip


def test_balances_by_provider_for_every_account(capsys: pytest.CaptureFixture[str]) -> None:
    code, document = run_json(capsys, "balances", "--by", "provider", "--ledger", OASIS)
    assert code == 0
    assert [a["account"] for a in document["accounts"]] == [
        "INVOICED", "PAID_10_DR1", "PAID_40_DR2", "TOOK_UP_20_DR2",
    ]  # fmt: skip
    code, out, _ = run(capsys, "balances", "--by", "provider", "--ledger", OASIS)
    assert out.count("Account ") == 4 and "DR2 Doctor 02" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--account", "SMITH", "--patient", "P1"], "error: give --account or --patient, not both"),
        (["--patient", "P1", "--by", "provider"],
         "error: --by provider shows an account's balances per provider; give --account ID"),
        (["--patient", "P77"], "error: there is no patient P77 in this ledger"),
        (["--account", "JONES"], "error: there is no account JONES in this ledger"),
    ],
)  # fmt: skip
def test_balances_bad_selections_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "balances", "--ledger", SMITH, *args)
    assert (code, out, err) == (2, "", message + "\n")


def test_a_bad_choice_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "balances", "--ledger", SMITH, "--by", "office")
    assert code == 2
    assert "'office' is not 'provider'" in err


# --------------------------------------------------------------------------
# payments
# --------------------------------------------------------------------------
def test_payments_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, document = run_json(capsys, "payments", "--ledger", THERAPY)
    assert code == 0
    assert [(p["id"], p["unallocated"], p["negative"]) for p in document["payments"]] == [
        ("INS1", "200.00", False),
        ("INS2", "100.00", False),
        ("INS3", "0.00", False),
        ("INS4", "-100.00", True),
    ]
    assert document["payments"][3] == {
        "id": "INS4", "patient": "T4", "payer": "insurance", "provider": "TH1",
        "amount": "200.00", "allocated": "300.00", "refunded": "0.00", "unallocated": "-100.00",
        "negative": True, "void": False,
    }  # fmt: skip


def test_payments_table_flags_a_negative_unallocated(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "payments", "--ledger", THERAPY)
    assert code == 0
    (row,) = [line for line in out.splitlines() if "INS4" in line and line.startswith("│")]
    assert "-100.00 ⚠" in row
    assert out.rstrip().endswith("⚠ negative unallocated: more was allocated than paid (INS4)")
    code, out, _ = run(capsys, "payments", "--ledger", SMITH)
    assert "⚠" not in out


def test_payments_of_one_account(capsys: pytest.CaptureFixture[str]) -> None:
    code, document = run_json(capsys, "payments", "--ledger", DRCHRONO, "--account", "JEN")
    assert code == 0
    rows = document["payments"]
    assert [(p["id"], p["amount"], p["refunded"], p["unallocated"]) for p in rows] == [
        ("PAY9", "100.00", "100.00", "0.00"),
        ("RF1", "-100.00", "0.00", "0.00"),
    ]  # fmt: skip


# --------------------------------------------------------------------------
# aging
# --------------------------------------------------------------------------
def test_aging_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, document = run_json(capsys, "aging", "--ledger", OASIS, "--as-of", "2025-04-01")
    assert code == 0
    assert document["as_of"] == "2025-04-01"
    assert document["accounts"][1] == {
        "account": "PAID_10_DR1", "current": "0.00", "31_60": "50.00", "61_90": "0.00",
        "over_90": "0.00", "outstanding": "50.00", "unallocated_credit": "10.00", "net": "40.00",
    }  # fmt: skip
    assert document["total"] == {
        "current": "0.00", "31_60": "180.00", "61_90": "0.00", "over_90": "0.00",
        "outstanding": "180.00", "unallocated_credit": "70.00", "net": "110.00",
    }  # fmt: skip


def test_aging_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "aging", "--ledger", SMITH)
    assert code == 0
    assert "Aged debtors as of 2025-03-01" in out
    (total,) = [line for line in out.splitlines() if "total" in line]
    assert [c.strip() for c in total.strip("│ ").split("│")] == [
        "total", "85.00", "145.00", "50.00", "1055.00", "1335.00", "316.00", "1019.00",
    ]  # fmt: skip


@pytest.mark.parametrize("written", ["01/03/2025", "٢٠٢٥-٠٣-٠١", "2025-03-01T00:00:00"])
def test_aging_bad_date(capsys: pytest.CaptureFixture[str], written: str) -> None:
    code, _, err = run(capsys, "aging", "--ledger", SMITH, "--as-of", written)
    assert code == 2
    assert f"Invalid value for '--as-of': '{written}' is not a date (write YYYY-MM-DD)" in err


# --------------------------------------------------------------------------
# Every verb
# --------------------------------------------------------------------------
@pytest.mark.parametrize("verb", ["validate", "balances", "payments", "aging"])
def test_every_verb_has_help_with_an_example(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, verb, "--help")
    assert code == 0
    assert "Example:" in out
    assert f"paysplit {verb} --ledger examples/ledgers/" in out
    assert "--ledger-format NAME" in out and "--json" in out and "--disable-plugin" in out


@pytest.mark.parametrize("verb", ["validate", "balances", "payments", "aging"])
def test_every_verb_refuses_a_ledger_that_does_not_load(
    verb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "four.json"
    path.write_text(FOUR_MISTAKES)
    code, out, err = run(capsys, verb, "--ledger", str(path), "--json")
    assert code == 2
    assert json.loads(out)["errors"] == FOUR_PROBLEMS
    assert "Traceback" not in err
