"""The audit trail: every CLI write records its plan in ``history``; ``validate`` checks it.

The first part runs every verb that writes a ledger (``post-payment``,
``apply`` to a payment and to an account, ``allocate``, ``refund``,
``unallocate``, ``void``, ``post-charge``) through ``paysplit.cli.main`` on the
bundled example, chained, and checks that each wrote exactly one history
entry naming what its plan made, the rule, the digest of the rule files and
plugin versions, the plugins and the time applied. The second part tampers
with the resulting ledger in every way ``check_history`` knows and checks
that ``paysplit validate`` reports it (exit 1) with the path at fault.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from paysplit import plugin_manager
from paysplit.cli import main
from paysplit.compiler import load_rules
from paysplit.invariants import check_history, check_invariants
from paysplit.ledger import Ledger
from paysplit.ledger_io import load_ledger, parse_ledger_text

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "ledgers" / "smith_family.json"
AUTO = str(ROOT / "rules" / "apply_automatically.rules")
OASIS = str(ROOT / "rules" / "oasis.rules")
DRCHRONO = str(ROOT / "rules" / "drchrono.rules")
NOW = "2025-03-01T09:00:00"

Step = tuple[str, list[str], str | None]
"""(verb, its arguments, the rule file it loads or None)."""

STEPS: list[Step] = [
    (
        "post-payment",
        [
            "--rules",
            AUTO,
            "--rule",
            "due_patient",
            "--payment",
            '{"id": "PAY9", "patient": "P1", "payer": "patient", "provider": "DR1", '
            '"office": "MAIN", "amount": "175.00"}',
        ],
        AUTO,
    ),
    ("apply", ["--rules", AUTO, "--rule", "due_patient_family", "--payment", "PAY1"], AUTO),
    (
        "allocate",
        ["--rules", AUTO, "--payment", "INS1", "--charge", "C3", "--amount", "20.00"],
        AUTO,
    ),
    ("refund", ["--rules", AUTO, "--payment", "PAY9", "--amount", "10.00"], AUTO),
    ("unallocate", ["--split", "PAY1-1", "--amount", "5.00"], None),
    ("void", ["--payment", "PAY3", "--reason", "entered twice"], None),
    (
        "post-charge",
        [
            "--rules",
            DRCHRONO,
            "--charge",
            '{"id": "C9", "patient": "P2", "provider": "DR2", "date": "2025-03-01", '
            '"amount": "40.00", "status": "due_patient"}',
        ],
        DRCHRONO,
    ),
    ("apply", ["--rules", OASIS, "--rule", "allocate_credit", "--account", "SMITH"], OASIS),
]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every writing verb, one after the other, each with --out to a new file."""
    folder = tmp_path_factory.mktemp("history")
    current = folder / "0.json"
    shutil.copyfile(EXAMPLE, current)
    plans: list[dict[str, Any]] = []
    files = [current]
    patcher = pytest.MonkeyPatch()
    patcher.setenv("PAYSPLIT_NOW", NOW)
    try:
        for number, (verb, args, _) in enumerate(STEPS, start=1):
            out = folder / f"{number}.json"
            code = main([verb, "--ledger", str(current), *args, "--json", "--out", str(out)])
            assert code == 0, (verb, args)
            files.append(out)
            current = out
        # --json printed each plan on stdout; run again with --preview to read them one by one.
        for number, (verb, args, _) in enumerate(STEPS):
            plans.append(_preview(verb, files[number], args))
    finally:
        patcher.undo()
    return {"files": files, "plans": plans, "folder": folder}


def _preview(verb: str, ledger: Path, args: list[str]) -> dict[str, Any]:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main([verb, "--ledger", str(ledger), *args, "--json", "--preview"]) == 0
    plan: dict[str, Any] = json.loads(buffer.getvalue())
    return plan


def test_every_writing_verb_appends_exactly_one_entry(chain: dict[str, Any]) -> None:
    files: list[Path] = chain["files"]
    for number, (verb, _, _) in enumerate(STEPS, start=1):
        before, after = load_ledger(files[number - 1]), load_ledger(files[number])
        assert after.history[: len(before.history)] == before.history, "history is append-only"
        assert len(after.history) == len(before.history) + 1
        assert after.history[-1].operation == verb


def test_each_entry_names_what_its_plan_made(chain: dict[str, Any]) -> None:
    files: list[Path] = chain["files"]
    final = load_ledger(files[-1])
    assert len(final.history) == len(STEPS)
    for entry, plan in zip(final.history, chain["plans"], strict=True):
        assert entry.operation == plan["operation"]
        assert entry.rule == plan["rule"]
        assert list(entry.splits) == [s["id"] for s in plan["splits"]]
        assert list(entry.payments) == [p["id"] for p in plan["payments"]]
        assert list(entry.voids) == [v["payment"] for v in plan["voids"]]
        assert list(entry.charges) == [c["id"] for c in plan.get("charges", [])]
        assert list(entry.credits) == [c["payment"] for c in plan["credits"]]
        assert entry.applied_at == NOW
    made = [e for e in final.history if e.splits or e.payments or e.voids or e.charges]
    assert len(made) == len(STEPS), "every step of the chain changed something"


def test_each_entry_carries_the_rules_digest_and_plugin_versions(chain: dict[str, Any]) -> None:
    final = load_ledger(chain["files"][-1])
    plugins = plugin_manager.load()
    for entry, (_, _, rules_file) in zip(final.history, STEPS, strict=True):
        if rules_file is None:
            assert entry.rules_digest is None and entry.plugins == {}
            continue
        rules = load_rules([rules_file], plugins)
        assert entry.rules_digest == rules.digest
        assert len(entry.rules_digest) == 64 and int(entry.rules_digest, 16) >= 0
        assert entry.plugins == dict(rules.plugins)
        assert entry.plugins["paysplit.apply_automatically"] == "0.1.0"


def test_the_digest_changes_with_the_rule_text_and_the_plugin_set(tmp_path: Path) -> None:
    plugins = plugin_manager.load()
    base = load_rules([AUTO], plugins).digest
    edited = tmp_path / "auto.rules"
    edited.write_text(Path(AUTO).read_text() + "\n# a comment changes the bundle\n")
    assert load_rules([edited], plugins).digest != base
    fewer = plugin_manager.load(disabled=["paysplit.whole_charges"])
    assert load_rules([AUTO], fewer).digest != base
    assert load_rules([AUTO], plugin_manager.load()).digest == base, "and is reproducible"


def test_in_place_writes_record_history_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = tmp_path / "book.json"
    shutil.copyfile(EXAMPLE, ledger)
    monkeypatch.delenv("PAYSPLIT_NOW", raising=False)
    started = dt.datetime.now().replace(microsecond=0)
    code, _, _ = _run(["void", "--ledger", str(ledger), "--payment", "PAY3", "--in-place"], capsys)
    assert code == 0
    (entry,) = load_ledger(ledger).history
    assert entry.operation == "void" and entry.voids == ("PAY3",)
    applied = dt.datetime.fromisoformat(entry.applied_at)
    assert started <= applied <= dt.datetime.now() + dt.timedelta(seconds=1), "the wall clock"


def test_the_chain_validates(chain: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    final = load_ledger(chain["files"][-1])
    assert check_invariants(final, history=True) == []
    code, out, _ = _run(["validate", "--ledger", str(chain["files"][-1])], capsys)
    assert code == 0 and "every invariant holds" in out


def test_void_and_refund_delete_nothing(chain: dict[str, Any]) -> None:
    files: list[Path] = chain["files"]
    voided = load_ledger(files[6])
    (account,) = voided.accounts
    pay3 = next(p for p in account.payments if p.id == "PAY3")
    assert pay3.void and "void: entered twice" in pay3.memo
    assert [s.id for s in account.splits if s.payment == "PAY3"] == ["PAY3-1"], "its split stays"
    refunded = load_ledger(files[4])
    assert {p.id for p in load_ledger(files[3]).accounts[0].payments} < {
        p.id for p in refunded.accounts[0].payments
    }
    for number in range(1, len(files)):
        before, after = load_ledger(files[number - 1]), load_ledger(files[number])
        for kind in ("charges", "payments", "splits", "adjustments", "plans", "patients"):
            old = [r.id for r in getattr(before.accounts[0], kind)]
            new = [r.id for r in getattr(after.accounts[0], kind)]
            assert new[: len(old)] == old, f"{STEPS[number - 1][0]} kept every {kind[:-1]}"


# --------------------------------------------------------------------------
# Tampered histories
# --------------------------------------------------------------------------
def _document(chain: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(Path(chain["files"][-1]).read_text())
    return doc


def _account(doc: dict[str, Any]) -> dict[str, Any]:
    account: dict[str, Any] = doc["accounts"][0]
    return account


def _entry(doc: dict[str, Any], operation: str) -> tuple[int, dict[str, Any]]:
    return next((n, e) for n, e in enumerate(doc["history"]) if e["operation"] == operation)


def _drop_split(doc: dict[str, Any], split_id: str) -> None:
    _account(doc)["splits"] = [s for s in _account(doc)["splits"] if s["id"] != split_id]


def _delete_an_allocation(doc: dict[str, Any]) -> str:
    n, entry = _entry(doc, "allocate")
    _drop_split(doc, entry["splits"][0])
    return f"history[{n}].splits[0]: split {entry['splits'][0]}, made here, is not in the ledger"


def _unvoid(doc: dict[str, Any]) -> str:
    n, _ = _entry(doc, "void")
    pay3 = next(p for p in _account(doc)["payments"] if p["id"] == "PAY3")
    pay3["void"] = False
    return f"history[{n}].voids[0]: payment PAY3 was voided here but is not void"


def _delete_the_voided_payment(doc: dict[str, Any]) -> str:
    n, _ = _entry(doc, "void")
    account = _account(doc)
    account["payments"] = [p for p in account["payments"] if p["id"] != "PAY3"]
    account["splits"] = [s for s in account["splits"] if s["payment"] != "PAY3"]
    return f"history[{n}].voids[0]: payment PAY3, voided here, is not in the ledger"


def _delete_the_refund(doc: dict[str, Any]) -> str:
    n, entry = _entry(doc, "refund")
    account = _account(doc)
    account["payments"] = [p for p in account["payments"] if p["id"] != entry["payments"][0]]
    return f"history[{n}].payments[0]: payment {entry['payments'][0]}, made here, is not in"


def _insert_a_split(doc: dict[str, Any]) -> str:
    account = _account(doc)
    account["splits"].append(
        {"id": "SNEAK-1", "payment": "PAY2", "charge": "C7", "amount": "1.00", "rule": "x"}
    )
    index = len(account["splits"]) - 1
    return (
        f"accounts[0].splits[{index}]: split SNEAK-1 comes after splits that paysplit "
        "recorded, but no history entry names it"
    )


def _remove_the_last_entry(doc: dict[str, Any]) -> str:
    removed = doc["history"].pop()
    split_id = removed["splits"][0]
    index = next(n for n, s in enumerate(_account(doc)["splits"]) if s["id"] == split_id)
    return f"accounts[0].splits[{index}]: split {split_id} comes after splits that paysplit"


def _record_a_split_twice(doc: dict[str, Any]) -> str:
    first, entry = _entry(doc, "allocate")
    later, other = _entry(doc, "void")
    other["splits"] = [entry["splits"][0]]
    split_id = entry["splits"][0]
    return f"history[{later}].splits[0]: split {split_id} is already recorded by history[{first}]"


def _unknown_operation(doc: dict[str, Any]) -> str:
    n, entry = _entry(doc, "allocate")
    entry["operation"] = "delete"
    return f"history[{n}].operation: 'delete' is not an operation paysplit records"


def _bad_time(doc: dict[str, Any]) -> str:
    doc["history"][0]["applied_at"] = "yesterday"
    return "history[0].applied_at: 'yesterday' is not a date and time"


def _remove_a_credit(doc: dict[str, Any]) -> str:
    n, entry = next((n, e) for n, e in enumerate(doc["history"]) if e["credits"])
    payment = next(p for p in _account(doc)["payments"] if p["id"] == entry["credits"][0])
    payment["credit"] = None
    return f"history[{n}].credits[0]: payment {payment['id']} was given a credit annotation here"


def _allocation_passed_off_as_unallocate(doc: dict[str, Any]) -> str:
    n, entry = _entry(doc, "unallocate")
    _, allocation = _entry(doc, "allocate")
    allocation_split = allocation["splits"].pop()
    entry["splits"] = [allocation_split]
    return f"history[{n}].splits[0]: split {allocation_split} is not a reversal"


TAMPERING: dict[str, Callable[[dict[str, Any]], str]] = {
    "a split paysplit made is deleted": _delete_an_allocation,
    "a void is undone": _unvoid,
    "a voided payment and its splits are deleted": _delete_the_voided_payment,
    "a refund is deleted": _delete_the_refund,
    "another program adds a split": _insert_a_split,
    "the last entry is removed": _remove_the_last_entry,
    "a split is recorded twice": _record_a_split_twice,
    "an entry is renamed": _unknown_operation,
    "a time is not a time": _bad_time,
    "a credit annotation is removed": _remove_a_credit,
    "an allocation is passed off as a reversal": _allocation_passed_off_as_unallocate,
}


@pytest.mark.parametrize("how", list(TAMPERING))
def test_validate_reports_a_tampered_history(
    how: str, chain: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _document(chain)
    expected = TAMPERING[how](doc)
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(doc))
    book = parse_ledger_text(path.read_bytes(), str(path))  # it still loads
    problems = [str(p) for p in check_history(book)]
    assert any(p.startswith(expected) for p in problems), (expected, problems)
    code, out, err = _run(["validate", "--ledger", str(path), "--json"], capsys)
    assert code == 1
    report = json.loads(out)
    assert report["valid"] is False
    shown = [f"{e['path']}: {e['message']}" for e in report["errors"]]
    assert any(line.startswith(expected) for line in shown)
    assert "Traceback" not in err


def test_history_is_not_checked_by_default_and_an_untouched_chain_is_clean(
    chain: dict[str, Any],
) -> None:
    doc = _document(chain)
    _insert_a_split(doc)
    book = Ledger.model_validate(copy.deepcopy(doc))
    assert check_invariants(book) == [], "check_invariants alone looks at the figures"
    assert check_invariants(book, history=True) != []
    assert check_history(load_ledger(chain["files"][-1])) == []
    assert check_history(load_ledger(EXAMPLE)) == [], "a ledger without history is clean"
