"""Scenario files: reading them exactly, running them, and failures a person can read."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from scenario_support import LEDGERS, ROOT, RULES

import paysplit.scenarios as scenarios_module
from paysplit.cli import main
from paysplit.errors import PaysplitError
from paysplit.ledger import Ledger, Split
from paysplit.scenarios import (
    ScenarioFileError,
    ScenarioResult,
    ScenarioSession,
    discover,
    load_scenario_file,
    parse_scenario_text,
)

THERAPY = (RULES / "therapy.rules").as_posix()
THERAPY_LEDGER = (LEDGERS / "therapy_insurance.json").as_posix()
HEAD = f"""\
rules: [{THERAPY}]
ledger: {THERAPY_LEDGER}
as_of: 2025-03-01
scenarios:
"""


def write(folder: Path, text: str, name: str = "t.scenario.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def run_file(path: Path, session: ScenarioSession | None = None) -> list[ScenarioResult]:
    session = session or ScenarioSession()
    file = load_scenario_file(path)
    return [session.run(file, scenario) for scenario in file.scenarios]


def load_error(folder: Path, text: str) -> ScenarioFileError:
    path = write(folder, text)
    with pytest.raises(ScenarioFileError) as caught:
        load_scenario_file(path)
    return caught.value


# --- reading: numbers stay exact, dates stay text -----------------------------------
def test_amounts_keep_their_written_text(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
  - name: exact
    allocate: {payment: INS1, charge: SE1, amount: 150.10}
    expect:
      unallocated: {INS1: 49.90}
      splits: [{amount: 100.1}]
""",
    )
    file = load_scenario_file(path)
    step = file.scenarios[0].steps[0]
    assert step.args["amount"] == "150.10"
    assert isinstance(step.args["amount"], str)
    assert file.scenarios[0].expect.unallocated == {"INS1": 4990}
    assert file.scenarios[0].expect.splits is not None
    assert file.scenarios[0].expect.splits[0].fields == {"amount": 10010}


def test_a_float_looking_amount_never_rounds(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        HEAD
        + """\
  - name: three places
    allocate: {payment: INS1, charge: SE1, amount: 0.1}
    expect:
      unallocated: {INS1: 12.345}
""",
    )
    assert error.line == 8
    assert "more than two decimal places" in error.render()
    assert error.render().startswith(f"{error.file}:8:")


def test_inline_ledger_numbers_and_dates_reach_the_ledger_exactly(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""\
        rules: [{THERAPY}]
        ledger:
          format: paysplit-ledger/1
          practice: {{name: X, currency: USD, as_of: 2025-03-01}}
          providers: [{{id: TH1}}]
          accounts:
            - id: A1
              patients: [{{id: no}}]
              charges:
                - {{id: S1, patient: no, provider: TH1, date: 2025-01-07, amount: 100.10,
                    status: due_insurance}}
              payments:
                - {{id: INS1, patient: no, payer: insurance, provider: TH1, date: 2025-02-10,
                    type: payment, amount: 0.30}}
        scenarios:
          - name: the word no is a patient id, not false
            apply: {{rule: insurance_sessions, payment: INS1}}
            expect:
              splits: [{{payment: INS1, charge: S1, amount: "0.30"}}]
              unallocated: {{INS1: 0}}
        """,
    )
    (result,) = run_file(path)
    assert result.passed, result.render()
    assert result.last is not None
    assert result.last.ledger.accounts[0].patients[0].id == "no"
    assert result.last.ledger.accounts[0].charges[0].amount == 10010


def test_a_date_that_is_not_a_date_is_an_error_at_its_line(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        f"""\
        rules: [{THERAPY}]
        ledger: {THERAPY_LEDGER}
        as_of: 2025-02-30
        scenarios:
          - name: x
            void: {{payment: INS1}}
        """,
    )
    assert error.line == 3
    assert "as_of must be a date written YYYY-MM-DD" in str(error)


# --- reading: every mistake is one error with its file and line ------------------------
@pytest.mark.parametrize(
    ("text", "line", "message", "hint"),
    [
        (
            HEAD + "  - name: x\n    void: {payment: INS1}\n    expect:\n      splitz: []\n",
            8,
            "unknown key 'splitz' in expect",
            'did you mean "splits"?',
        ),
        (
            HEAD.replace("as_of:", "as_off:") + "  - name: x\n    void: {payment: INS1}\n",
            3,
            "unknown key 'as_off' in the scenario file",
            'did you mean "as_of"?',
        ),
        (
            HEAD + "  - name: x\n    aply: {payment: INS1}\n",
            6,
            "unknown key 'aply' in a scenario",
            'did you mean "apply"?',
        ),
        (
            HEAD + "  - name: x\n    allocate: {payment: INS1, chrage: SE1, amount: 1}\n",
            6,
            "unknown key 'chrage' in allocate",
            'did you mean "charge"?',
        ),
        (
            HEAD + "  - name: x\n    post_payment: {id: P, patient: T1, payr: patient}\n",
            6,
            "unknown key 'payr' in post_payment",
            'did you mean "payer"?',
        ),
        (
            HEAD
            + "  - name: x\n    void: {payment: INS1}\n    expect:\n"
            + "      splits:\n        - {charge: SE1, amont: 1}\n",
            9,
            "unknown key 'amont' in an expected split",
            'did you mean "amount"?',
        ),
        (
            HEAD
            + "  - name: x\n    void: {payment: INS1}\n    expect:\n"
            + "      balances: {T1: {statement: 1}}\n",
            8,
            "unknown key 'statement' in balances of T1",
            "",
        ),
        (
            HEAD + "  - name: x\n    steps:\n      - {void: {payment: INS1}, apply: {}}\n",
            7,
            "each item of steps names exactly one of",
            "",
        ),
        (
            HEAD + "  - name: x\n    void: {payment: INS1}\n    apply: {payment: INS1}\n",
            5,
            "has more than one step",
            "",
        ),
        (HEAD + "  - name: x\n    rule: insurance_sessions\n", 5, "has no step", ""),
        (
            HEAD
            + "  - name: x\n    void: {payment: INS1}\n  - name: x\n    void: {payment: INS1}\n",
            7,
            "two scenarios are named 'x' (the first on line 5)",
            "",
        ),
        (
            HEAD + "  - name: x\n    void: {payment: INS1, payment: INS2}\n",
            6,
            "key 'payment' is given twice in this mapping",
            "",
        ),
        (HEAD + "  - void: {payment: INS1}\n", 5, "a scenario needs a name", ""),
        (
            HEAD + "  - name: x\n    void: {payment: INS1}\n    expect: {blocked: [a]}\n",
            7,
            "blocked (a part of the reason, or false) must be text, not a list",
            "",
        ),
        (HEAD + "  - name: x\n    void: [INS1]\n", 6, "void must be a mapping", ""),
        (f"ledger: {THERAPY_LEDGER}\nscenarios: []\n", 1, "a scenario file needs 'rules'", ""),
        (HEAD, 4, "scenarios must be a list, not nothing (null)", ""),
        (HEAD + "  - name: x\n    void: {payment: INS1\n", 7, "not valid YAML", ""),
        ("rules: [a]\n---\nrules: [b]\n", 1, "one YAML document, not several", ""),
        ("", 1, "the file is empty", ""),
        ("- just\n- a list\n", 1, "a scenario file must be a mapping", ""),
    ],
)
def test_a_bad_scenario_file_is_one_error_with_file_and_line(
    tmp_path: Path, text: str, line: int, message: str, hint: str
) -> None:
    error = load_error(tmp_path, text)
    rendered = error.render()
    assert error.line == line, rendered
    assert message in rendered
    assert hint in rendered
    assert rendered.startswith(f"{error.file}:{line}:")
    assert "Traceback" not in rendered


def test_binary_huge_and_deeply_nested_files_are_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "b.scenario.yaml"
    binary.write_bytes(b"rules: [\xff\xfe]\n")
    with pytest.raises(ScenarioFileError, match="not UTF-8 text"):
        load_scenario_file(binary)
    nul = tmp_path / "n.scenario.yaml"
    nul.write_text("rules: \x00\n", encoding="utf-8")
    with pytest.raises(ScenarioFileError, match="NUL bytes"):
        load_scenario_file(nul)
    deep = tmp_path / "d.scenario.yaml"
    deep.write_text("rules: " + "[" * 20000 + "]" * 20000 + "\n", encoding="utf-8")
    with pytest.raises(ScenarioFileError, match=r"nested too deeply|not valid YAML"):
        load_scenario_file(deep)
    monkeypatch.setattr(scenarios_module, "MAX_FILE_BYTES", 10)
    with pytest.raises(ScenarioFileError, match="a scenario file is at most 10 bytes"):
        load_scenario_file(binary)
    with pytest.raises(ScenarioFileError, match="no such scenario file"):
        load_scenario_file(tmp_path / "missing.scenario.yaml")


def test_missing_rule_and_ledger_files_are_errors_at_their_line(tmp_path: Path) -> None:
    session = ScenarioSession()
    path = write(
        tmp_path,
        "rules: [nope.rules]\nledger: x.json\nscenarios:\n  - {name: a, void: {payment: P}}\n",
    )
    with pytest.raises(ScenarioFileError) as caught:
        session.prepare(load_scenario_file(path))
    assert caught.value.line == 1
    assert "rule file" in str(caught.value) and "nope.rules does not exist" in str(caught.value)
    path = write(
        tmp_path,
        f"rules: [{THERAPY}]\nledger: x.json\nscenarios:\n  - {{name: a, void: {{payment: P}}}}\n",
    )
    with pytest.raises(ScenarioFileError) as caught:
        session.prepare(load_scenario_file(path))
    assert caught.value.line == 2
    assert "x.json does not exist" in str(caught.value)


def test_an_inline_ledger_problem_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""\
        rules: [{THERAPY}]
        ledger:
          format: paysplit-ledger/1
          practice: {{name: X, currency: USD}}
          providers: [{{id: TH1}}]
          accounts:
            - id: A1
              patients: [{{id: T1}}]
              charges:
                - {{id: S1, patient: T1, provider: TH1, date: 2025-01-07, amont: 100.00,
                   status: due_insurance}}
                - {{id: S2, patient: T1, provider: TH1, date: 2025-01-07,
                   amount: 1.005, status: due_insurance}}
        scenarios:
          - {{name: a, void: {{payment: X}}}}
        """,
    )
    with pytest.raises(PaysplitError) as caught:
        ScenarioSession().prepare(load_scenario_file(path))
    text = caught.value.render()
    assert f"{path.as_posix()}:10: ledger.accounts[0].charges[0].amont: unknown field" in text
    assert f"{path.as_posix()}:13: ledger.accounts[0].charges[1].amount: 1.005 has more " in text


def test_rule_files_with_errors_and_bad_ledgers_stop_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.rules").write_text("rule r: no crossdoctor\n", encoding="utf-8")
    path = write(
        tmp_path,
        f"rules: [bad.rules]\nledger: {THERAPY_LEDGER}\n"
        "scenarios:\n  - {name: a, void: {payment: INS1}}\n",
    )
    with pytest.raises(PaysplitError) as caught:
        ScenarioSession().prepare(load_scenario_file(path))
    assert "bad.rules:1:" in caught.value.render()
    assert "no cross-doctor" in caught.value.render()
    path = write(
        tmp_path,
        f"rules: [{THERAPY}]\nledger: {{format: paysplit-ledger/1}}\nscenarios:\n"
        "  - {name: a, void: {payment: INS1}}\n",
    )
    with pytest.raises(PaysplitError) as caught:
        ScenarioSession().prepare(load_scenario_file(path))
    assert 't.scenario.yaml:2: "practice" is required' in caught.value.render()


# --- running ----------------------------------------------------------------------
def test_every_stock_scenario_passes() -> None:
    session = ScenarioSession()
    files, _ = discover([RULES])
    assert len(files) >= 6
    for path in files:
        for result in run_file(path, session):
            assert result.passed, result.render()


def test_each_stock_rule_file_has_a_scenario_file() -> None:
    covered = set()
    for path in discover([RULES])[0]:
        covered.update(p.name for p in load_scenario_file(path).rules)
    assert covered == {p.name for p in RULES.glob("*.rules")}


def test_a_wrong_amount_fails_with_a_diff_naming_its_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
  - name: the rule pays the sessions oldest first
    apply: {rule: insurance_sessions, payment: INS1}
    expect:
      splits:
        - {payment: INS1, charge: SE1, amount: "100.00"}
        - {payment: INS1, charge: SE2, amount: "90.00"}
      unallocated: {INS1: "10.00"}
""",
    )
    (result,) = run_file(path)
    assert not result.passed
    text = result.render()
    shown = result.scenario.file
    assert text.splitlines()[0] == (
        f"{shown}:5: scenario 'the rule pays the sessions oldest first' failed"
    )
    assert (
        f"{shown}:10: expect.splits differs (2 expected, 2 made; the first difference is " in text
    )
    assert '  {payment: INS1, charge: SE1, amount: "100.00"}' in text
    assert '- {payment: INS1, charge: SE2, amount: "90.00"}' in text
    assert '+ {payment: INS1, charge: SE2, amount: "100.00"}' in text
    assert f"{shown}:11: expect.unallocated differs" in text
    assert "- INS1: 10.00" in text and "+ INS1: 0.00" in text
    assert "trace:" in text
    assert "SE2  used" in text and "therapy.rules:7:5" in text


def test_absent_keys_are_not_checked_and_listed_splits_must_match_exactly(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
  - name: only the unallocated amount is checked
    apply: {rule: insurance_sessions, payment: INS1}
    expect:
      unallocated: {INS1: "0.00"}
  - name: a split missing from the list fails
    apply: {rule: insurance_sessions, payment: INS1}
    expect:
      splits: [{charge: SE1}]
  - name: the order of splits matters
    apply: {rule: insurance_sessions, payment: INS1}
    expect:
      splits: [{charge: SE2}, {charge: SE1}]
  - name: only the keys written are compared
    apply: {rule: insurance_sessions, payment: INS1}
    expect:
      splits: [{charge: SE1}, {amount: 100}]
""",
    )
    results = run_file(path)
    assert [r.passed for r in results] == [True, False, False, True]
    assert '+ {payment: INS1, charge: SE2, installment: null, amount: "100.00"}' in (
        results[1].render()
    )


def test_each_scenario_starts_from_the_files_ledger_afresh(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
  - name: first
    post_payment: {id: NEW1, patient: T1, payer: insurance, provider: TH1, amount: 50}
    rule: insurance_sessions
    expect:
      splits: [{payment: NEW1, charge: SE1, amount: "50.00"}]
  - name: second, from the same ledger
    post_payment: {id: NEW1, patient: T1, payer: insurance, provider: TH1, amount: 50}
    rule: insurance_sessions
    expect:
      splits: [{payment: NEW1, charge: SE1, amount: "50.00"}]
""",
    )
    assert [r.passed for r in run_file(path)] == [True, True]


def test_steps_run_in_order_on_the_same_ledger(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
  - name: allocate, unallocate, apply
    steps:
      - allocate: {payment: INS1, charge: SE2, amount: 30}
      - unallocate: {split: INS1-1, amount: 10}
      - apply: {rule: insurance_sessions, payment: INS1}
    expect:
      splits:
        - {id: INS1-3, charge: SE1, amount: "100.00"}
        - {id: INS1-4, charge: SE2, amount: "80.00"}
      unallocated: {INS1: "0.00"}
""",
    )
    (result,) = run_file(path)
    assert result.passed, result.render()
    assert [s.step.kind for s in result.steps] == ["allocate", "unallocate", "apply"]


def test_a_blocked_step_fails_unless_expected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
  - name: overpaying a session is refused
    allocate: {payment: INS1, charge: SE1, amount: 150}
  - name: expected
    allocate: {payment: INS1, charge: SE1, amount: 150}
    expect: {blocked: "more than the 100.00 that SE1 still allows"}
  - name: another reason
    allocate: {payment: INS1, charge: SE1, amount: 150}
    expect: {blocked: "cross-doctor"}
  - name: not blocked
    allocate: {payment: INS1, charge: SE1, amount: 50}
    expect: {blocked: false}
  - name: expected but not blocked
    allocate: {payment: INS1, charge: SE1, amount: 50}
    expect: {blocked: "anything"}
  - name: blocked before the last step
    steps:
      - allocate: {payment: INS1, charge: SE1, amount: 150}
      - allocate: {payment: INS1, charge: SE1, amount: 50}
    expect: {blocked: "allows"}
""",
    )
    results = run_file(path)
    assert [r.passed for r in results] == [False, True, False, True, False, False]
    assert "step 1 (allocate) was blocked: 150.00 is more than" in results[0].render()
    assert "- ... cross-doctor ..." in results[2].render()
    assert "it was not blocked" in results[4].render()
    assert "step 1 (allocate) was blocked" in results[5].render()


def test_errors_fail_unless_expected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
  - name: unexpected error
    refund: {payment: INS1, amount: 500}
  - name: expected error
    refund: {payment: INS1, amount: 500}
    expect: {error: "more than the 200.00 unallocated"}
  - name: expected error that does not come
    refund: {payment: INS1, amount: 50}
    expect: {error: "more than"}
  - name: an unknown payment
    void: {payment: NOPE}
    expect: {error: "no payment NOPE"}
""",
    )
    results = run_file(path)
    assert [r.passed for r in results] == [False, True, False, True]
    assert "step 1 (refund) failed: a refund of 500.00 is more than" in results[0].render()
    assert "it succeeded" in results[2].render()


def test_warnings_credits_and_balances_are_compared(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
  - name: warnings in order, each a part of the message
    steps:
      - post_charge: {id: SE10, patient: T3, provider: TH1, amount: 50, status: due_insurance}
      - allocate: {payment: INS3, charge: SE10, amount: 0.01}
    expect:
      warnings: ["would leave -0.01 unallocated"]
  - name: a missing warning
    allocate: {payment: INS1, charge: SE1, amount: 100}
    expect:
      warnings: ["something"]
  - name: credits
    apply: {rule: insurance_sessions, payment: INS1}
    expect:
      credits: [{payment: INS1, amount: 0}]
  - name: balances of a patient and an account, and one that does not exist
    allocate: {payment: INS1, charge: SE1, amount: 100}
    expect:
      balances:
        T1: {responsibility: "100.00", total_paid: "0.00"}
        NEW: {responsibility: "100.00"}
        T9: {allocated: "0.00"}
""",
    )
    results = run_file(path)
    assert [r.passed for r in results] == [True, False, False, False]
    assert "expect.warnings differs (1 expected, 0 given" in results[1].render()
    assert "expect.credits differs (1 expected, 0 made" in results[2].render()
    balances = results[3].render()
    assert "  T1 responsibility: 100.00" in balances
    assert "- T9 allocated: 0.00" in balances and "+ T9 allocated: (unknown)" in balances


def test_the_run_date_comes_from_the_scenario_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD.replace("as_of: 2025-03-01", "as_of: 2025-06-30")
        + """\
  - name: a refund is dated the run date
    refund: {payment: INS1, amount: 10}
""",
    )
    (result,) = run_file(path)
    assert result.passed, result.render()
    assert result.last is not None and result.last.plan is not None
    assert result.last.plan.payments[0].date.isoformat() == "2025-06-30"


# --- invariants and the plan's promises, after every step ---------------------------------
def _zero_split(ledger: Ledger) -> Ledger:
    account = ledger.accounts[0]
    bad = Split(id="ZERO", payment=account.payments[0].id, charge=None, amount="0.00")
    broken = account.model_copy(update={"splits": (*account.splits, bad)})
    return ledger.model_copy(update={"accounts": (broken, *ledger.accounts[1:])})


def test_invariants_are_checked_after_every_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
  - name: the first step breaks an invariant, the expectation is never reached
    steps:
      - allocate: {payment: INS1, charge: SE1, amount: 10}
      - allocate: {payment: INS1, charge: SE1, amount: 10}
    expect:
      unallocated: {INS1: "180.00"}
""",
    )
    real = scenarios_module.apply_plan
    calls: list[int] = []

    def corrupt(ledger: Ledger, plan: Any) -> Ledger:
        calls.append(1)
        return _zero_split(real(ledger, plan))

    monkeypatch.setattr(scenarios_module, "apply_plan", corrupt)
    (result,) = run_file(path)
    assert not result.passed
    text = result.render()
    assert "t.scenario.yaml:7: step 1 (allocate) broke an invariant" in text
    assert "split ZERO moves 0.00" in text
    assert calls == [1]


def test_the_ledger_must_show_what_the_plan_predicted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        HEAD
        + "  - name: the applied plan loses its split\n"
        + "    allocate: {payment: INS1, charge: SE1, amount: 10}\n",
    )
    monkeypatch.setattr(scenarios_module, "apply_plan", lambda ledger, plan: ledger)
    (result,) = run_file(path)
    assert not result.passed
    assert "the plan said INS1 would have 190.00 unallocated; the ledger shows 200.00" in (
        result.render()
    )


def test_a_ledger_that_is_broken_before_any_step_fails_every_scenario(tmp_path: Path) -> None:
    ledger = json.loads((LEDGERS / "therapy_insurance.json").read_text(encoding="utf-8"))
    ledger["accounts"][0]["splits"] = [
        {"id": "Z", "payment": "INS1", "charge": "SE1", "amount": "0.00"}
    ]
    (tmp_path / "broken.json").write_text(json.dumps(ledger), encoding="utf-8")
    path = write(
        tmp_path,
        f"rules: [{THERAPY}]\nledger: broken.json\nscenarios:\n"
        "  - name: a\n    void: {payment: INS2}\n",
    )
    (result,) = run_file(path)
    assert not result.passed
    assert "t.scenario.yaml:2: the scenario file's ledger breaks an invariant" in result.render()


def test_over_allocation_without_a_warning_breaks_an_invariant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A plan that over-allocates must say so: strip the warnings and the step fails.
    path = write(
        tmp_path,
        f"""\
        rules: [{(RULES / "therapy.rules").as_posix()}]
        ledger: {THERAPY_LEDGER}
        as_of: 2025-03-01
        scenarios:
          - name: over-allocating with the warning dropped
            steps:
              - post_charge: {{id: SE10, patient: T3, provider: TH1, amount: 50,
                               status: due_insurance}}
              - allocate: {{payment: INS3, charge: SE10, amount: 1}}
        """,
    )
    real = scenarios_module._run_step

    def silent(ledger: Ledger, rules: Any, step: Any) -> Any:
        plan = real(ledger, rules, step)
        return plan.model_copy(update={"warnings": ()})

    monkeypatch.setattr(scenarios_module, "_run_step", silent)
    (result,) = run_file(path)
    assert not result.passed
    assert "step 2 (allocate) broke an invariant" in result.render()
    assert "INS3 has 201.00 allocated, more than its amount 200.00" in result.render()


# --- paysplit test -------------------------------------------------------------------------
def test_paysplit_test_runs_the_stock_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(RULES)]) == 0
    out = capsys.readouterr().out
    assert "PASS  " in out and "FAIL  " not in out
    assert " 0 failed" in out


def test_paysplit_test_reports_a_failure_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        tmp_path,
        HEAD
        + """\
  - name: wrong
    apply: {rule: insurance_sessions, payment: INS1}
    expect: {splits: [{charge: SE1, amount: 1}]}
  - name: right
    apply: {rule: insurance_sessions, payment: INS1}
""",
    )
    assert main(["test", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  " in out and "t.scenario.yaml:5  wrong" in out
    assert "t.scenario.yaml:7: expect.splits differs" in out
    assert "1 passed, 1 failed" in out


def test_paysplit_test_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(
        tmp_path,
        HEAD + "  - name: wrong\n    apply: {rule: insurance_sessions, payment: INS1}\n"
        "    expect: {unallocated: {INS1: 5}}\n",
    )
    assert main(["test", str(tmp_path), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["passed"] == 0 and document["failed"] == 1
    (scenario,) = document["scenarios"]
    assert scenario["name"] == "wrong" and scenario["line"] == 5
    assert scenario["failures"][0]["message"] == "expect.unallocated differs"
    assert scenario["plan"]["splits"][0]["charge"] == "SE1"


def test_paysplit_test_a_bad_file_exits_2_and_still_runs_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, HEAD + "  - name: ok\n    void: {payment: INS1}\n", "a.scenario.yaml")
    write(tmp_path, HEAD + "  - name: bad\n    voi: {payment: INS1}\n", "b.scenario.yaml")
    assert main(["test", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "b.scenario.yaml:6:5: error: unknown key 'voi' in a scenario" in captured.err
    assert "1 passed, 0 failed, 1 file(s) could not be loaded" in captured.out


def test_paysplit_test_bad_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(tmp_path / "nowhere")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "x.txt").write_text("", encoding="utf-8")
    assert main(["test", str(tmp_path / "x.txt")]) == 2
    assert main(["test", str(RULES), "--fail-under", "101"]) == 2
    assert "not between 0 and 100" in capsys.readouterr().err


def test_discover_finds_scenario_and_rule_files_and_skips_hidden_folders(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / ".hidden").mkdir()
    write(tmp_path / "a", "x", "one.scenario.yaml")
    write(tmp_path / ".hidden", "x", "two.scenario.yaml")
    (tmp_path / "a" / "r.rules").write_text("", encoding="utf-8")
    scenarios, rules = discover([tmp_path])
    assert [p.name for p in scenarios] == ["one.scenario.yaml"]
    assert [p.name for p in rules] == ["r.rules"]
    assert discover([ROOT / "rules" / "card.scenario.yaml"])[0][0].name == "card.scenario.yaml"


def test_parse_scenario_text_anchors_relative_paths_at_the_file(tmp_path: Path) -> None:
    file = parse_scenario_text(
        "rules: [../r.rules]\nledger: l.json\nscenarios:\n  - {name: a, void: {payment: P}}\n",
        tmp_path / "sub" / "x.scenario.yaml",
    )
    assert file.rules == (tmp_path / "r.rules",)
    assert file.ledger_path == tmp_path / "sub" / "l.json"
