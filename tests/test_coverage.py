"""Rule coverage: which rules ran, which clauses decided something, and --fail-under."""

from __future__ import annotations

import json
import shutil
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest
from scenario_support import LEDGERS, RULES

from paysplit.cli import main
from paysplit.coverage import Coverage, CoverageReport, parse_percent
from paysplit.formatter import format_text
from paysplit.policy import Filter
from paysplit.scenarios import ScenarioSession, discover, load_scenario_file

LEDGER = """\
ledger:
  format: paysplit-ledger/1
  practice: {name: Test Dental, currency: USD, as_of: 2025-03-01}
  providers: [{id: DR1}, {id: DR2}]
  accounts:
    - id: A1
      patients: [{id: P1}, {id: P2, guarantor: P1}]
      charges:
        - {id: C1, patient: P1, provider: DR1, date: 2025-01-05, amount: 100, status: due_patient}
        - {id: C2, patient: P1, provider: DR1, date: 2025-01-10, amount: 50, status: due_patient}
        - {id: C3, patient: P2, provider: DR2, date: 2025-01-10, amount: 40, status: due_insurance}
      payments:
        - {id: PAY1, patient: P1, payer: patient, provider: DR1, date: 2025-02-01, type: payment,
           amount: 120}
"""


def project(tmp_path: Path, rules: str, scenarios: str, name: str = "p") -> Path:
    """A rule file and its scenario file (inline ledger) in ``tmp_path``."""
    (tmp_path / f"{name}.rules").write_text(textwrap.dedent(rules), encoding="utf-8")
    scenario = tmp_path / f"{name}.scenario.yaml"
    scenario.write_text(
        f"rules: [{name}.rules]\n" + LEDGER + "scenarios:\n" + textwrap.dedent(scenarios),
        encoding="utf-8",
    )
    return scenario


def coverage_of(*paths: Path, extra_rules: tuple[Path, ...] = ()) -> CoverageReport:
    coverage = Coverage()
    session = ScenarioSession(coverage=coverage)
    scenario_files, rule_files = discover(list(paths))
    for path in scenario_files:
        file = load_scenario_file(path)
        for scenario in file.scenarios:
            result = session.run(file, scenario)
            assert result.passed, result.render()
    for rule_file in (*rule_files, *extra_rules):
        coverage.add_rules(session.compile([str(rule_file)]))
    return coverage.report()


def decisions(report: CoverageReport) -> dict[str, int]:
    return {c.text: c.decisions for f in report.files for c in f.clauses}


# --- the stock rules ------------------------------------------------------------------
def test_the_stock_scenarios_cover_every_stock_rule_and_clause() -> None:
    report = coverage_of(RULES)
    assert {f.file.rsplit("/", 1)[-1] for f in report.files} == {
        p.name for p in RULES.glob("*.rules")
    }
    for file in report.files:
        assert file.rules_run == len(file.rules), file.to_json()
        assert file.clauses_decided == len(file.clauses), report.render()
    assert report.percent == 100
    assert not report.below(Fraction(100))


def test_the_report_counts_per_rule_and_per_clause() -> None:
    report = coverage_of(
        RULES / "therapy.scenario.yaml", RULES / "therapy_two_therapists.scenario.yaml"
    )
    (file,) = report.files
    (rule,) = file.rules
    assert rule.name == "insurance_sessions" and rule.runs == 4
    assert [(c.kind, c.text) for c in rule.clauses] == [
        ("order", "oldest first"),
        ("filter", "where status in (due_insurance, pending_payer) and payment.payer = insurance"),
        ("preference", "match provider"),
    ]
    assert [c.decisions for c in rule.clauses] == [4, 2, 1]
    assert rule.clauses[2].how == ("preferred",)
    (setting,) = file.settings
    assert setting.text == "negative unallocated warn" and setting.how == ("warned about a split",)
    document = report.to_json()
    assert document["rules"] == 1 and document["clauses"] == 4 and document["percent"] == "100%"
    text = report.render()
    assert "rules/therapy.rules" in text and "1/1" in text and "4/4" in text


# --- what "decided" means, kind by kind ---------------------------------------------------
def test_a_filter_decides_only_when_it_skips_a_target(tmp_path: Path) -> None:
    rules = "rule r: oldest first where status = due_patient\n"
    keep_all = project(
        tmp_path,
        rules,
        """\
        - name: both of P1's charges are due from the patient
          apply: {rule: r, payment: PAY1}
        """,
    )
    assert decisions(coverage_of(keep_all))["where status = due_patient"] == 0
    skip = project(
        tmp_path,
        "rule r: oldest first where status = due_patient, include dependents\n",
        """\
        - name: P2's charge is due from insurance
          apply: {rule: r, payment: PAY1}
        """,
        name="q",
    )
    assert decisions(coverage_of(skip))["where status = due_patient"] == 1


def test_an_order_decides_only_when_it_separates_candidates(tmp_path: Path) -> None:
    rules = "rule r: order by amount desc then date, include dependents\n"
    scenario = project(
        tmp_path,
        rules,
        """\
        - name: amounts all differ, so the second key never decides
          apply: {rule: r, payment: PAY1}
        """,
    )
    counted = decisions(coverage_of(scenario))
    assert counted["order by amount desc"] == 1
    assert counted["then date"] == 0
    tied = project(
        tmp_path,
        "rule r: order by status then date desc\n",
        """\
        - name: both charges are due_patient, so the date decides
          apply: {rule: r, payment: PAY1}
          expect:
            splits: [{charge: C2, amount: "50.00"}, {charge: C1, amount: "70.00"}]
        """,
        name="tied",
    )
    counted = decisions(coverage_of(tied))
    assert counted["order by status"] == 0
    assert counted["then date desc"] == 1


def test_a_guard_decides_when_it_refuses_and_a_preference_when_it_chooses(tmp_path: Path) -> None:
    scenario = project(
        tmp_path,
        """\
        rule whole: smallest first, whole charges only
        rule pref: oldest first, match provider, include dependents
        """,
        """\
        - name: 120 pays C2 (50) in full, then not C1 (100) partly
          apply: {rule: whole, payment: PAY1}
          expect:
            splits: [{charge: C2, amount: "50.00"}]
        - name: DR1's charges first; C3 is DR2's
          apply: {rule: pref, payment: PAY1}
        """,
    )
    counted = decisions(coverage_of(scenario))
    assert counted["whole charges only"] == 1
    assert counted["match provider"] == 1
    only_dr1 = project(
        tmp_path,
        "rule pref: oldest first, match provider\n",
        "- name: every charge is DR1's\n  apply: {rule: pref, payment: PAY1}\n",
        name="dr1",
    )
    assert decisions(coverage_of(only_dr1))["match provider"] == 0


def test_a_leftover_and_a_scope_decide_only_when_they_change_the_outcome(tmp_path: Path) -> None:
    scenario = project(
        tmp_path,
        "rule r: oldest first, include dependents, leftover credit due patient\n",
        """\
        - name: 120 goes to P1's 150; nothing is left and P2's charge is never reached
          apply: {rule: r, payment: PAY1}
        - name: 300 pays everything, P2's charge included, and leaves 110 over
          post_payment: {id: PAY2, patient: P1, payer: patient, provider: DR1, amount: 300}
          rule: r
          expect:
            splits: [{charge: C1}, {charge: C2}, {charge: C3, amount: "40.00"}]
            credits: [{payment: PAY2, amount: "110.00"}]
        """,
    )
    counted = decisions(coverage_of(scenario))
    assert counted["include dependents"] == 1
    assert counted["leftover credit due patient"] == 1


def test_settings_guards_count_only_when_written(tmp_path: Path) -> None:
    scenario = project(
        tmp_path,
        """\
        settings:
            no cross-doctor
        rule r: on demand, from unallocated, include account, oldest first
        """,
        """\
        - name: DR1's credit may not pay DR2's charge C3
          apply: {rule: r}
          expect:
            splits: [{charge: C1, amount: "100.00"}, {charge: C2, amount: "20.00"}]
        """,
    )
    report = coverage_of(scenario)
    (file,) = report.files
    # The written setting counts: once the credit ran out, it still says why DR1's
    # credit could never have paid DR2's C3 (so C3 is not owed by this credit).
    assert [(c.text, c.decisions) for c in file.settings] == [("no cross-doctor", 1)]
    assert decisions(report)["on demand"] == 1


def test_formatting_a_rule_file_changes_no_count(tmp_path: Path) -> None:
    one_line = (
        'rule r "Everything": leftover credit due patient, include dependents, '
        "oldest first where amount != 50, match provider\n"
    )
    formatted, errors = format_text(one_line)
    assert not errors and formatted is not None and formatted.count("\n") > 3
    scenarios = """\
    - name: pays C1 (DR1) then P2's C3 (DR2), never C2; 260.00 is left
      post_payment: {id: PAY2, patient: P1, payer: patient, provider: DR1, amount: 400}
      rule: r
    """
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = coverage_of(project(tmp_path / "a", one_line, scenarios))
    second = coverage_of(project(tmp_path / "b", formatted, scenarios))

    def shape(report: CoverageReport) -> list[tuple[str, str, int]]:
        return sorted((c.kind, c.text, c.decisions) for f in report.files for c in f.clauses)

    assert shape(first) == shape(second)
    assert (first.items, first.covered) == (second.items, second.covered) == (6, 6)
    assert [c.where for f in first.files for c in f.clauses] != [
        c.where for f in second.files for c in f.clauses
    ]


# --- instrumentation changes nothing ----------------------------------------------------
def test_instrumented_rules_give_the_same_plans() -> None:
    plain_session = ScenarioSession()
    covered_session = ScenarioSession(coverage=Coverage())
    for path in discover([RULES])[0]:
        file = load_scenario_file(path)
        for scenario in file.scenarios:
            plain = plain_session.run(file, scenario)
            covered = covered_session.run(file, scenario)
            assert plain.passed and covered.passed
            for a, b in zip(plain.steps, covered.steps, strict=True):
                assert (a.plan is None) == (b.plan is None)
                if a.plan is not None and b.plan is not None:
                    assert a.plan.dumps() == b.plan.dumps()


def test_an_instrumented_clause_still_is_what_it_was() -> None:
    coverage = Coverage()
    rules = ScenarioSession(coverage=coverage).compile([str(RULES / "card.rules")])
    filters = rules.rules["card"].filters
    assert isinstance(filters[0].impl, Filter)
    with pytest.raises(AttributeError):
        filters[0].impl.anything = 1


# --- --fail-under ------------------------------------------------------------------------
def test_a_rule_without_a_scenario_fails_fail_under_100(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(RULES, tmp_path / "rules")
    shutil.copytree(LEDGERS, tmp_path / "examples" / "ledgers")
    extra = tmp_path / "rules" / "therapy.rules"
    extra.write_text(
        extra.read_text(encoding="utf-8")
        + '\nrule self_pay "Self-pay sessions":\n    oldest first where payment.payer = patient\n',
        encoding="utf-8",
    )
    assert main(["test", str(tmp_path / "rules"), "--coverage", "--fail-under", "100"]) == 1
    out = capsys.readouterr().out
    assert "rule self_pay: NEVER RAN" in out
    assert "is below --fail-under 100%" in out
    assert "0 failed" in out
    assert main(["test", str(tmp_path / "rules"), "--fail-under", "90", "-q"]) == 0
    assert "reaches --fail-under 90%" in capsys.readouterr().out


def test_a_rule_file_without_any_scenario_file_counts_as_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "lonely.rules").write_text("rule lonely: oldest first\n", encoding="utf-8")
    assert main(["test", str(tmp_path), "--coverage", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    (file,) = document["coverage"]["files"]
    assert file["rules"] == 1 and file["rules_run"] == 0 and file["percent"] == "0%"
    assert main(["test", str(tmp_path), "--fail-under", "1"]) == 1


def test_parse_percent() -> None:
    assert parse_percent("87.5") == Fraction(175, 2)
    assert parse_percent("100%") == 100
    assert parse_percent(0) == 0
    for bad in ("-1", "100.01", "abc", ""):
        with pytest.raises(ValueError):
            parse_percent(bad)
