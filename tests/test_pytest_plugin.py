"""The pytest plugin: scenario files collected as tests, readable failures, coverage."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from scenario_support import copy_stock, pytest_plugin_args

from paysplit.scenarios import discover, load_scenario_file

pytest_plugins = ["pytester"]


@pytest.fixture
def stock(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A project folder holding a copy of the stock rules and example ledgers."""
    monkeypatch.delenv("PAYSPLIT_PLUGINS", raising=False)
    monkeypatch.delenv("PAYSPLIT_DISABLE_PLUGINS", raising=False)
    copy_stock(pytester.path)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*pytest_plugin_args(), "-p", "no:cacheprovider", *args)


def scenario_file(pytester: pytest.Pytester, name: str, body: str) -> Path:
    path = pytester.path / "rules" / name
    head = (
        "rules: [therapy.rules]\n"
        "ledger: ../examples/ledgers/therapy_insurance.json\n"
        "as_of: 2025-03-01\n"
        "scenarios:\n"
    )
    path.write_text(head + textwrap.dedent(body), encoding="utf-8")
    return path


def stock_count(folder: Path) -> int:
    return sum(len(load_scenario_file(p).scenarios) for p in discover([folder])[0])


def test_pytest_collects_every_stock_scenario_and_they_pass(stock: pytest.Pytester) -> None:
    result = run(stock, "rules")
    count = stock_count(stock.path / "rules")
    assert count >= 40
    result.assert_outcomes(passed=count)
    assert result.ret == 0


def test_each_scenario_is_an_item_named_after_it(stock: pytest.Pytester) -> None:
    result = run(stock, "rules/oasis.scenario.yaml", "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "rules/oasis.scenario.yaml::a manual allocation across doctors is refused",
            "rules/oasis.scenario.yaml::credit can be used, then re-used (unallocate)",
        ]
    )
    selected = run(stock, "rules", "-k", "leftover")
    selected.assert_outcomes(passed=3)


def test_a_failing_scenario_shows_file_line_diff_and_trace(stock: pytest.Pytester) -> None:
    scenario_file(
        stock,
        "wrong.scenario.yaml",
        """\
        - name: insurance pays the sessions
          apply: {rule: insurance_sessions, payment: INS1}
          expect:
            splits:
              - {payment: INS1, charge: SE1, amount: "100.00"}
              - {payment: INS1, charge: SE2, amount: "90.00"}
        """,
    )
    result = run(stock, "rules/wrong.scenario.yaml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "rules/wrong.scenario.yaml:5: scenario 'insurance pays the sessions' failed",
            "  rules/wrong.scenario.yaml:10: expect.splits differs (2 expected, 2 made;*",
            "      --- expected",
            "      +++ actual",
            '        {payment: INS1, charge: SE1, amount: "100.00"}',
            '      - {payment: INS1, charge: SE2, amount: "90.00"}',
            '      + {payment: INS1, charge: SE2, amount: "100.00"}',
            "  step 1 (apply, line 6): 2 split(s)",
            "    rule: insurance_sessions",
            "    trace:",
            "      SE1  used *rules/therapy.rules:7:5]",
            "FAILED rules/wrong.scenario.yaml::insurance pays the sessions*",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert "scenarios.py" not in result.stdout.str()


def test_a_bad_scenario_file_is_a_collection_error_with_its_line(stock: pytest.Pytester) -> None:
    scenario_file(stock, "bad.scenario.yaml", "- name: x\n  aply: {payment: INS1}\n")
    result = run(stock, "rules/bad.scenario.yaml")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting rules/bad.scenario.yaml*",
            "rules/bad.scenario.yaml:6:3: error: unknown key 'aply' in a scenario",
            '  did you mean "apply"?',
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_a_scenario_whose_rules_do_not_compile_is_a_collection_error(
    stock: pytest.Pytester,
) -> None:
    (stock.path / "rules" / "broken.rules").write_text(
        "rule r: oldest first, no crossdoctor\n", encoding="utf-8"
    )
    path = scenario_file(stock, "b.scenario.yaml", "- {name: x, void: {payment: INS1}}\n")
    path.write_text(path.read_text().replace("therapy.rules", "broken.rules"), encoding="utf-8")
    result = run(stock, "rules/b.scenario.yaml")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ['rules/broken.rules:1:23: error: unknown clause "no crossdoctor"', "*no cross-doctor*"]
    )


def test_coverage_is_reported_per_rule_file(stock: pytest.Pytester) -> None:
    result = run(stock, "rules", "--paysplit-coverage")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*paysplit rule coverage*",
            "rule coverage (a rule counts when it ran, a clause when it decided something)",
            "  rule file * rules   clauses   cover",
            "  rules/apply_automatically.rules * 5/5 * 15/15 * 100%",
            "  rules/card.rules * 1/1 * 4/4 * 100%",
            "  TOTAL * 13/13 * 100%",
        ]
    )


def test_fail_under_fails_the_session_when_a_rule_has_no_scenario(stock: pytest.Pytester) -> None:
    passing = run(stock, "rules", "--paysplit-fail-under", "100")
    assert passing.ret == 0
    passing.stdout.fnmatch_lines(["rule coverage 100% reaches --paysplit-fail-under 100%"])
    (stock.path / "rules" / "extra.rules").write_text(
        'rule nobody_tests_me "An untested rule": oldest first\n', encoding="utf-8"
    )
    failing = run(stock, "rules", "--paysplit-coverage", "--paysplit-fail-under", "100")
    count = stock_count(stock.path / "rules")
    failing.assert_outcomes(passed=count)
    assert failing.ret == pytest.ExitCode.TESTS_FAILED
    failing.stdout.fnmatch_lines(
        [
            "  rules/extra.rules * 0/1 * 0/1 * 0%",
            "*rule nobody_tests_me: NEVER RAN",
            "FAIL: rule coverage * is below --paysplit-fail-under 100%",
        ]
    )


def test_a_bad_fail_under_is_a_usage_error(stock: pytest.Pytester) -> None:
    result = run(stock, "rules", "--paysplit-fail-under", "lots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--paysplit-fail-under: 'lots' is not a percentage*"])


def test_disabling_a_plugin_makes_its_rules_fail_to_load(stock: pytest.Pytester) -> None:
    result = run(
        stock, "rules/card.scenario.yaml", "--paysplit-disable-plugin", "paysplit.cross_doctor"
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*no cross-doctor*paysplit.cross_doctor*"])
