"""The verbs that change a ledger, run through ``paysplit.cli.main`` as a user would."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from alloc_support import (
    CreditDue,
    OverAllocation,
    OverPay,
    SameDoctorOnly,
    StatusIn,
    charge,
    check_invariants,
    ledger,
    payment,
    rule,
    ruleset,
    split,
)

from paysplit.apply import apply_plan, history_entry, record_history
from paysplit.cli import main
from paysplit.cli import operations as verbs
from paysplit.core_clauses import OldestFirst
from paysplit.ledger import Account, Ledger
from paysplit.ledger_io import (
    dump_jsonl_line,
    dump_ledger,
    load_jsonl_ledger,
    write_jsonl,
    write_ledger,
)
from paysplit.operations import void as voiding
from paysplit.rules import RuleSet

DUE = rule(
    "due_patient",
    orders=[(OldestFirst(), "oldest first")],
    filters=[StatusIn(("due_patient", "pending_patient"))],
    leftover=CreditDue(),
)
RULES = ruleset(
    DUE,
    default_rule="due_patient",
    settings_guards=(SameDoctorOnly(), OverAllocation(), OverPay()),
)
BOOK = ledger(
    charges=[
        charge("C1", 10000, date="2025-01-01"),
        charge("C2", 5000, date="2025-01-05", status="due_insurance"),
        charge("C3", 7500, date="2025-01-20"),
    ],
    payments=[payment("PAY1", 15000), payment("PAY2", 4000, provider="DR2")],
    splits=[split("PAY1-1", "PAY1", "C3", 500)],
)
HAVE_LEDGER_IO = importlib.util.find_spec("paysplit.ledger_io") is not None


@pytest.fixture
def setup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """A ledger file, and rule loading that records the paths it was given."""
    seen: dict[str, Any] = {"paths": None}

    def load_rules(paths: list[str]) -> RuleSet:
        seen["paths"] = list(paths)
        return RULES

    monkeypatch.setattr(verbs, "load_rules", load_rules)
    if not HAVE_LEDGER_IO:  # until paysplit.ledger_io lands: plain JSON both ways
        monkeypatch.setattr(
            verbs,
            "read_ledger",
            lambda path, fmt=None: Ledger.model_validate_json(Path(path).read_text()),
        )
        monkeypatch.setattr(
            verbs,
            "write_ledger",
            lambda book, path: Path(path).write_text(book.model_dump_json(indent=2)),
        )
    monkeypatch.setenv("PAYSPLIT_NOW", "2025-03-01T09:00:00")
    path = tmp_path / "book.json"
    path.write_text(BOOK.model_dump_json(indent=2))
    seen["ledger"] = str(path)
    seen["tmp"] = tmp_path
    return seen


def read(path: Path | str) -> Ledger:
    return Ledger.model_validate_json(Path(path).read_text())


def test_apply_prints_the_plan_as_json(setup: dict[str, Any], capsys: Any) -> None:
    code = main(
        ["apply", "--ledger", setup["ledger"], "--rules", "a.rules", "--payment", "PAY1", "--json"]
    )
    out = capsys.readouterr().out
    assert code == 0
    plan = json.loads(out)
    assert [(s["id"], s["charge"], s["amount"]) for s in plan["splits"]] == [
        ("PAY1-2", "C1", "100.00"),
        ("PAY1-3", "C3", "45.00"),
    ]
    assert plan["unallocated"] == {"PAY1": "0.00"}
    assert plan["rule"] == "due_patient" and plan["preview"] is False
    assert setup["paths"] == ["a.rules"]
    assert read(setup["ledger"]) == BOOK, "nothing is written without --out"


def test_explain_prints_why_each_target_was_skipped(setup: dict[str, Any], capsys: Any) -> None:
    code = main(
        [
            "apply",
            "--ledger",
            setup["ledger"],
            "--rules",
            "a.rules",
            "--rule",
            "due_patient",
            "--payment",
            "PAY1",
            "--explain",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert (
        "C2 skipped: status due_insurance is not due_patient or pending_patient "
        "(rules/test.rules:4:18)"
    ) in out
    assert "C1 paid 100.00 from PAY1: paid 100.00 of the 100.00 due (rules/test.rules:3:5)" in out
    assert "PAY1-2" in out and "Splits" in out


def test_several_rule_files_after_one_rules_option_or_repeated(
    setup: dict[str, Any], capsys: Any
) -> None:
    assert (
        main(
            [
                "apply",
                "--ledger",
                setup["ledger"],
                "--rules",
                "a.rules",
                "b.rules",
                "--payment",
                "PAY1",
            ]
        )
        == 0
    )
    assert setup["paths"] == ["a.rules", "b.rules"]
    assert (
        main(
            [
                "apply",
                "--rules",
                "a.rules",
                "--ledger",
                setup["ledger"],
                "--rules",
                "c.rules",
                "--payment",
                "PAY1",
            ]
        )
        == 0
    )
    assert setup["paths"] == ["a.rules", "c.rules"]


def test_out_writes_the_new_ledger_with_a_history_entry(setup: dict[str, Any], capsys: Any) -> None:
    out = setup["tmp"] / "after.json"
    code = main(
        [
            "apply",
            "--ledger",
            setup["ledger"],
            "--rules",
            "a.rules",
            "--payment",
            "PAY1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    after = read(out)
    assert [s.id for s in after.accounts[0].splits] == ["PAY1-1", "PAY1-2", "PAY1-3"]
    (entry,) = after.history
    assert entry.applied_at == "2025-03-01T09:00:00"
    assert entry.splits == ("PAY1-2", "PAY1-3") and entry.rules_digest == "sha256:test"
    assert check_invariants(after) == []
    assert read(setup["ledger"]) == BOOK


def test_preview_writes_nothing_even_with_out(setup: dict[str, Any], capsys: Any) -> None:
    out = setup["tmp"] / "after.json"
    code = main(
        [
            "apply",
            "--ledger",
            setup["ledger"],
            "--rules",
            "a.rules",
            "--payment",
            "PAY1",
            "--out",
            str(out),
            "--preview",
            "--json",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["preview"] is True
    assert not out.exists()


def test_in_place_rewrites_the_ledger(setup: dict[str, Any], capsys: Any) -> None:
    code = main(
        [
            "refund",
            "--ledger",
            setup["ledger"],
            "--payment",
            "PAY2",
            "--amount",
            "-15.00",
            "--in-place",
        ]
    )
    assert code == 0
    after = read(setup["ledger"])
    assert after.accounts[0].payments[-1].id == "PAY2-R1"
    assert after.accounts[0].payments[-1].amount == -1500
    assert after.history[0].operation == "refund"


def test_a_refused_manual_allocation_exits_3_and_writes_nothing(
    setup: dict[str, Any], capsys: Any
) -> None:
    out = setup["tmp"] / "after.json"
    code = main(
        [
            "allocate",
            "--ledger",
            setup["ledger"],
            "--payment",
            "PAY2",
            "--charge",
            "C1",
            "--amount",
            "20.00",
            "--out",
            str(out),
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 3
    plan = json.loads(captured.out)
    assert plan["blocked"] == {
        "reason": "credit of DR2 cannot pay DR1's charge C1",
        "clause": "rules/test.rules:60:5",
        "plugin": "test",
    }
    assert plan["splits"] == []
    assert "blocked: credit of DR2 cannot pay DR1's charge C1" in captured.err
    assert not out.exists()


def test_allocate_by_hand_and_write(setup: dict[str, Any], capsys: Any) -> None:
    out = setup["tmp"] / "after.json"
    code = main(
        [
            "allocate",
            "--ledger",
            setup["ledger"],
            "--payment",
            "PAY1",
            "--charge",
            "C1",
            "--amount",
            "30",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    after = read(out)
    assert [(s.id, s.amount, s.transfer) for s in after.accounts[0].splits[1:]] == [
        ("PAY1-2", 3000, "T-PAY1-2")
    ]


def test_unallocate_and_void(setup: dict[str, Any], capsys: Any) -> None:
    assert (
        main(
            [
                "unallocate",
                "--ledger",
                setup["ledger"],
                "--split",
                "PAY1-1",
                "--amount",
                "2.00",
                "--in-place",
            ]
        )
        == 0
    )
    after = read(setup["ledger"])
    assert after.accounts[0].splits[-1].reverses == "PAY1-1"
    assert after.accounts[0].splits[-1].amount == -200
    assert (
        main(
            [
                "void",
                "--ledger",
                setup["ledger"],
                "--payment",
                "PAY2",
                "--reason",
                "wrong doctor",
                "--in-place",
            ]
        )
        == 0
    )
    after = read(setup["ledger"])
    assert after.accounts[0].payments[1].void
    assert [h.operation for h in after.history] == ["unallocate", "void"]


def test_post_payment_runs_the_default_rule(setup: dict[str, Any], capsys: Any) -> None:
    new = json.dumps(
        {
            "id": "PAY9",
            "patient": "P1",
            "payer": "patient",
            "provider": "DR1",
            "date": "2025-03-01",
            "amount": "300.00",
        }
    )
    code = main(
        [
            "post-payment",
            "--ledger",
            setup["ledger"],
            "--rules",
            "a.rules",
            "--payment",
            new,
            "--json",
        ]
    )
    plan = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(s["id"], s["transfer"]) for s in plan["splits"]] == [
        ("PAY9-1", None),
        ("PAY9-2", None),
    ]
    assert plan["credits"][0]["amount"] == "130.00"
    assert plan["payments"][0]["id"] == "PAY9"


def test_post_charge_adds_the_charge(setup: dict[str, Any], capsys: Any) -> None:
    new = json.dumps(
        {"id": "C9", "patient": "P1", "provider": "DR1", "amount": "20.00", "status": "due_patient"}
    )
    assert main(["post-charge", "--ledger", setup["ledger"], "--charge", new, "--in-place"]) == 0
    assert read(setup["ledger"]).accounts[0].charges[-1].id == "C9"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["apply", "--rules", "a.rules", "--payment", "PAY7"],
            "error: there is no payment PAY7 in the ledger",
        ),
        (["apply", "--payment", "PAY1"], "error: apply needs rule files"),
        (
            ["apply", "--rules", "a.rules", "--payment", "PAY1", "--rule", "nope"],
            "error: there is no rule nope",
        ),
        (
            ["refund", "--payment", "PAY2", "--amount", "41"],
            "error: a refund of 41.00 is more than the 40.00 unallocated on payment PAY2",
        ),
        (
            ["allocate", "--payment", "PAY1", "--charge", "C1", "--amount", "1.234"],
            "error: --amount: 1.234 has more than two decimal places",
        ),
        (
            ["apply", "--rules", "a.rules", "--payment", "PAY1", "--out", "x.json", "--in-place"],
            "error: give --out PATH or --in-place, not both",
        ),
        (["post-payment", "--payment", "{bad"], "error: the payment is not valid JSON"),
        (["void", "--payment", "PAY1", "stray"], "Got unexpected extra argument"),
        (
            ["apply", "--payment", "PAY1", "--as-of", "soon", "--rules", "a.rules"],
            "error: --as-of: 'soon' is not a date",
        ),
        (
            ["apply", "--payment", "PAY1", "--as-of", "٢٠٢٥-٠٣-٠١", "--rules", "a.rules"],
            "error: --as-of: '٢٠٢٥-٠٣-٠١' is not a date (write YYYY-MM-DD)\n",
        ),
        (
            ["apply", "--payment", "PAY1", "--as-of", "20250301", "--rules", "a.rules"],
            "error: --as-of: '20250301' is not a date (write YYYY-MM-DD)\n",
        ),
        (
            ["allocate", "--payment", "PAY1", "--charge", "C1", "--amount", "١٠"],
            "error: --amount: '١٠' is written with digits other than 0-9; write it like 12.50\n",
        ),
    ],
)
def test_bad_input_exits_2_with_one_clear_message(
    setup: dict[str, Any], capsys: Any, argv: list[str], message: str
) -> None:
    code = main([*argv, "--ledger", setup["ledger"]])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert read(setup["ledger"]) == BOOK


# --- the format written: JSON Lines stays JSON Lines ------------------------------------
TWO_ACCOUNTS = BOOK.model_copy(
    update={
        "accounts": (
            *BOOK.accounts,
            Account.model_validate({"id": "ZZ", "patients": [{"id": "P9"}]}),
        )
    }
)


def _voided(book: Ledger) -> Ledger:
    """``book`` as ``void --payment PAY2`` writes it (the void and its history entry)."""
    plan = voiding(book, "PAY2", None)
    return record_history(apply_plan(book, plan), history_entry(plan, None))


def test_in_place_writes_a_json_lines_ledger_back_as_json_lines(
    setup: dict[str, Any], capsys: Any
) -> None:
    path = setup["tmp"] / "book.jsonl"
    write_jsonl(TWO_ACCOUNTS.header(), TWO_ACCOUNTS.accounts, path)
    argv = ["void", "--ledger", str(path), "--ledger-format", "jsonl", "--payment", "PAY2"]
    assert main([*argv, "--in-place"]) == 0
    expected = _voided(TWO_ACCOUNTS)
    assert path.read_text() == "".join(
        dump_jsonl_line(record) for record in (expected.header(), *expected.accounts)
    )
    assert [json.loads(line).get("id") for line in path.read_text().splitlines()] == [
        None, "A1", "ZZ",
    ]  # fmt: skip
    assert load_jsonl_ledger(path) == expected


@pytest.mark.parametrize(
    ("read_as", "out_name", "written_as"),
    [
        ("json", "new.jsonl", "jsonl"),
        ("json", "new.JSONL", "jsonl"),
        ("json", "new", "json"),
        ("jsonl", "new.json", "json"),
        ("jsonl", "new.jsonl", "jsonl"),
        ("jsonl", "new.ledger", "jsonl"),
    ],
)
def test_out_writes_the_format_its_suffix_names_else_the_format_read(
    setup: dict[str, Any], capsys: Any, read_as: str, out_name: str, written_as: str
) -> None:
    path = setup["tmp"] / f"book.{read_as}"
    if read_as == "jsonl":
        write_jsonl(TWO_ACCOUNTS.header(), TWO_ACCOUNTS.accounts, path)
    else:
        write_ledger(TWO_ACCOUNTS, path)
    out = setup["tmp"] / out_name
    argv = ["void", "--ledger", str(path), "--ledger-format", read_as, "--payment", "PAY2"]
    assert main([*argv, "--out", str(out)]) == 0
    expected = _voided(TWO_ACCOUNTS)
    if written_as == "jsonl":
        assert out.read_text().count("\n") == 3
        assert load_jsonl_ledger(out) == expected
    else:
        assert out.read_text() == dump_ledger(expected)


def test_in_place_over_a_format_only_a_plugin_reads_is_refused_before_anything(
    setup: dict[str, Any], capsys: Any
) -> None:
    export = setup["tmp"] / "export.csv"
    export.write_text("not read\n")
    argv = ["void", "--ledger", str(export), "--ledger-format", "dental-csv", "--payment", "P1"]
    assert main([*argv, "--in-place", "--json"]) == 2
    captured = capsys.readouterr()
    message = (
        '--in-place: paysplit writes only its own ledger formats (json, jsonl), not "dental-csv" '
        "(a format a plugin reads); write the new ledger with --out PATH.json instead; nothing "
        "was written"
    )
    assert json.loads(captured.out) == {"error": message}
    assert captured.err == f"error: {message}\n"
    assert export.read_text() == "not read\n"
    assert sorted(p.name for p in setup["tmp"].iterdir()) == ["book.json", "export.csv"]


@pytest.mark.parametrize(
    "verb", ["apply", "allocate", "refund", "unallocate", "void", "post-charge", "post-payment"]
)
def test_every_verb_has_help_with_an_example(verb: str, capsys: Any) -> None:
    assert main([verb, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Example" in out and f"paysplit {verb} --ledger" in out
    for flag in ("--json", "--preview", "--out", "--in-place", "--explain", "--ledger"):
        assert flag in out
