"""The pytest plugin: ``pytest rules/`` runs every ``*.scenario.yaml`` as tests.

Installing paysplit registers this module under the ``pytest11`` entry point
(``paysplit = "paysplit.pytest_plugin"``), so no Python needs to be written:
each scenario of a scenario file is one test item, named by the scenario's
``name``, reported at the scenario's line. A failure prints what
:meth:`paysplit.scenarios.ScenarioResult.render` says (file and line, a diff
of expected against actual, the plan's trace); a scenario file that cannot be
read, or whose rules or ledger do not load, is a collection error with one
clear message.

Options:

``--paysplit-coverage``
    report, per rule file, which rules ran and which clauses decided something
    (:mod:`paysplit.coverage`); rule files (``*.rules``) found among the
    collected paths count even when no scenario uses them.
``--paysplit-fail-under PERCENT``
    with coverage, fail the session when coverage is below PERCENT.
``--paysplit-disable-plugin NAME``
    do not load this paysplit plugin (repeatable; ``PAYSPLIT_DISABLE_PLUGINS``
    and ``PAYSPLIT_PLUGINS`` are honoured as by the command line).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from paysplit.coverage import Coverage, CoverageReport, parse_percent, percent_text
from paysplit.errors import PaysplitError
from paysplit.scenarios import (
    SUFFIX,
    Scenario,
    ScenarioFile,
    ScenarioResult,
    ScenarioSession,
    shown_path,
)

_SESSION = pytest.StashKey[ScenarioSession]()
_RULE_FILES = pytest.StashKey[list[Path]]()
_FAIL_UNDER = pytest.StashKey[Fraction | None]()
_REPORT = pytest.StashKey[CoverageReport | None]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("paysplit", "paysplit scenario files")
    group.addoption(
        "--paysplit-coverage",
        action="store_true",
        default=False,
        help="report which rules and clauses of the rule files the scenarios exercised",
    )
    group.addoption(
        "--paysplit-fail-under",
        metavar="PERCENT",
        default=None,
        help="with --paysplit-coverage: fail when rule coverage is below PERCENT",
    )
    group.addoption(
        "--paysplit-disable-plugin",
        action="append",
        default=[],
        metavar="NAME",
        help="do not load this paysplit plugin (repeatable)",
    )


def _env_list(name: str) -> list[str]:
    return [n.strip() for n in os.environ.get(name, "").split(",") if n.strip()]


def pytest_configure(config: pytest.Config) -> None:
    fail_under_text = config.getoption("--paysplit-fail-under")
    fail_under: Fraction | None = None
    if fail_under_text is not None:
        try:
            fail_under = parse_percent(fail_under_text)
        except ValueError as exc:
            raise pytest.UsageError(f"--paysplit-fail-under: {exc}") from None
    coverage = Coverage() if config.getoption("--paysplit-coverage") or fail_under else None
    allowed = None if os.environ.get("PAYSPLIT_PLUGINS") is None else _env_list("PAYSPLIT_PLUGINS")
    disabled = [
        *_env_list("PAYSPLIT_DISABLE_PLUGINS"),
        *config.getoption("--paysplit-disable-plugin"),
    ]
    config.stash[_SESSION] = ScenarioSession(coverage=coverage, disabled=disabled, allowed=allowed)
    config.stash[_RULE_FILES] = []
    config.stash[_FAIL_UNDER] = fail_under
    config.addinivalue_line("markers", "paysplit_scenario: a scenario of a *.scenario.yaml file")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name.endswith(SUFFIX):
        return ScenarioYamlFile.from_parent(parent, path=file_path)
    if file_path.suffix == ".rules":
        parent.config.stash[_RULE_FILES].append(file_path)
    return None


class ScenarioYamlFile(pytest.File):
    """One scenario file: its scenarios are the items."""

    def collect(self) -> Iterator[pytest.Item]:
        session = self.config.stash[_SESSION]
        file = session.load(self.path)
        session.prepare(file)  # rules and ledger load now: a bad one is a collection error
        for scenario in file.scenarios:
            yield ScenarioItem.from_parent(self, name=scenario.name, file=file, scenario=scenario)

    def repr_failure(  # type: ignore[override]
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> str | Any:
        if isinstance(excinfo.value, PaysplitError):
            return excinfo.value.render()
        return super().repr_failure(excinfo)


class ScenarioFailed(Exception):
    """A scenario's expectations were not met (the result says how)."""

    def __init__(self, result: ScenarioResult) -> None:
        super().__init__(result.render())
        self.result = result


class ScenarioItem(pytest.Item):
    """One scenario of a scenario file."""

    def __init__(self, *, file: ScenarioFile, scenario: Scenario, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file = file
        self.scenario = scenario
        self.add_marker("paysplit_scenario")

    def runtest(self) -> None:
        result = self.config.stash[_SESSION].run(self.file, self.scenario)
        if not result.passed:
            raise ScenarioFailed(result)

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | Any:
        if isinstance(excinfo.value, ScenarioFailed | PaysplitError):
            value = excinfo.value
            return value.render() if isinstance(value, PaysplitError) else str(value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.scenario.line - 1, f"scenario: {self.scenario.name}"


def _report(config: pytest.Config) -> CoverageReport | None:
    session = config.stash.get(_SESSION, None)
    coverage = None if session is None else session.coverage
    if session is None or not isinstance(coverage, Coverage):
        return None
    for path in config.stash[_RULE_FILES]:
        try:
            coverage.add_rules(session.compile([shown_path(path)]))
        except PaysplitError as exc:
            coverage.problems.append(exc.render())
    return coverage.report()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    report = _report(config)
    config.stash[_REPORT] = report
    fail_under = config.stash.get(_FAIL_UNDER, None)
    if report is not None and report.below(fail_under) and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report = config.stash.get(_REPORT, None)
    if report is None:
        return
    coverage = config.stash[_SESSION].coverage
    terminalreporter.section("paysplit rule coverage")
    for problem in coverage.problems if isinstance(coverage, Coverage) else ():
        terminalreporter.write_line(problem)
    terminalreporter.write_line(report.render())
    fail_under = config.stash.get(_FAIL_UNDER, None)
    if fail_under is not None:
        if report.below(fail_under):
            terminalreporter.write_line(
                f"FAIL: rule coverage {percent_text(report.percent)} is below "
                f"--paysplit-fail-under {percent_text(fail_under)}",
                red=True,
            )
        else:
            terminalreporter.write_line(
                f"rule coverage {percent_text(report.percent)} reaches "
                f"--paysplit-fail-under {percent_text(fail_under)}"
            )
