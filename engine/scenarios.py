"""Scenario files: rule files tested like code, by the pytest plugin and ``paysplit test``.

A scenario file (``*.scenario.yaml``, ``docs/scenarios.md``) names rule files,
a ledger and a run date, then scenarios: each posts, applies, allocates,
refunds, unallocates or voids on a fresh copy of that ledger, and says what
must come out::

    rules: [../smile.rules]
    ledger: ../examples/ledgers/smith_family.json     # or an inline mapping
    as_of: 2025-03-01
    scenarios:
      - name: a part payment pays the oldest due-patient charge first
        post_payment: {id: PAY9, patient: P1, payer: patient, date: 2025-03-01, amount: 150.00}
        rule: due_patient
        expect:
          splits: [{charge: C1, amount: "100.00"}, {charge: C2, amount: "50.00"}]
          unallocated: {PAY9: "0.00"}

This module is the one engine behind both faces: :class:`ScenarioSession`
finds files (:func:`discover`), loads them (:func:`load_scenario_file`),
compiles their rules once, loads their ledger once, runs each scenario step
by step and returns a :class:`ScenarioResult`. The parts it runs on are
modules of their own, and everything they offer callers is importable from here:

* :mod:`paysplit.scenario_yaml`: the YAML, read so that no number becomes a
  float, with the line of every key and item, and :class:`ScenarioFileError`;
* :mod:`paysplit.scenario_file`: the model of a scenario file and the checks
  of every key in it (:func:`parse_scenario_text`);
* :mod:`paysplit.scenario_steps`: carrying out one step, and what must hold
  after it;
* :mod:`paysplit.scenario_report`: checking ``expect``, and the failure as a
  person reads it (:meth:`ScenarioResult.render`).

A step that is blocked or fails is a failure unless it is the last one and
``expect`` says ``blocked`` / ``error``. After every step, whatever ``expect``
says, the runner checks the invariants of ``docs/semantics.md``, that the
ledger read back after applying the plan shows the unallocated amounts the
plan predicted, that every transfer's legs net to zero, and that the ledger
survives being written and read again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from paysplit.apply import apply_plan
from paysplit.errors import LedgerError, PaysplitError, UsageError
from paysplit.ledger import Ledger
from paysplit.plans import Plan
from paysplit.rules import RuleSet
from paysplit.scenario_file import (
    BALANCE_FIGURES,
    STEP_KINDS,
    Expect,
    ExpectedRecord,
    Scenario,
    ScenarioFile,
    Step,
    parse_scenario_text,
    shown_path,
)
from paysplit.scenario_report import Mismatch, ScenarioResult, check_expectations, with_clause
from paysplit.scenario_steps import (
    StepOutcome,
    after_step_problems,
    ran_rules,
    strict_problems,
)

# Looked up here when a step runs, not in scenario_steps, so that a test can put a
# step that misbehaves in its place (as it does with apply_plan above).
from paysplit.scenario_steps import run_step as _run_step
from paysplit.scenario_yaml import Number, ScenarioFileError, line_of_path

if TYPE_CHECKING:
    from paysplit.plugin_manager import PluginSet

__all__ = [
    "BALANCE_FIGURES",
    "STEP_KINDS",
    "SUFFIX",
    "Expect",
    "ExpectedRecord",
    "InlineLedgerError",
    "Mismatch",
    "Number",
    "Scenario",
    "ScenarioFile",
    "ScenarioFileError",
    "ScenarioResult",
    "ScenarioSession",
    "Step",
    "StepOutcome",
    "discover",
    "load_scenario_file",
    "parse_scenario_text",
    "shown_path",
]

SUFFIX = ".scenario.yaml"
"""What a scenario file's name ends with."""

MAX_FILE_BYTES = 4_000_000
"""A scenario file larger than this is refused: it is a mistake, not a test."""


def load_scenario_file(path: str | Path) -> ScenarioFile:
    """Read and check one scenario file; a bad file raises one :class:`ScenarioFileError`."""
    shown = shown_path(path)

    def refuse(message: str) -> ScenarioFileError:
        return ScenarioFileError.at(shown, 1, message)

    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise refuse(
                f"the file is {size} bytes; a scenario file is at most {MAX_FILE_BYTES} bytes"
            )
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise refuse("no such scenario file") from None
    except IsADirectoryError:
        raise refuse("is a folder, not a scenario file") from None
    except OSError as exc:
        raise refuse(f"cannot be read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ScenarioFileError.at(
            shown, line, "the file is not UTF-8 text (is it a binary file?)"
        ) from None
    return parse_scenario_text(text, path)


def discover(paths: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """Scenario files and rule files under ``paths`` (files or folders), sorted.

    A folder is searched recursively (hidden folders, virtualenvs and build
    output are skipped); a file given by name must be a scenario or rule file.
    """
    scenarios: set[Path] = set()
    rule_files: set[Path] = set()

    def keep(file: Path) -> bool:
        """Keep a scenario or rule file; False for any other file."""
        if file.name.endswith(SUFFIX):
            scenarios.add(Path(os.path.abspath(file)))
        elif file.name.endswith(".rules"):
            rule_files.add(Path(os.path.abspath(file)))
        else:
            return False
        return True

    for given in paths:
        path = Path(given)
        if path.is_dir():
            for root, folders, files in os.walk(path):
                folders[:] = sorted(
                    f
                    for f in folders
                    if not f.startswith(".")
                    and f not in {"node_modules", "__pycache__", "build", "dist"}
                    and not f.endswith(".egg-info")
                )
                for name in files:
                    keep(Path(root) / name)
        elif path.is_file():
            if not keep(path):
                raise UsageError(
                    f"{given}: not a scenario file (*{SUFFIX}) or a rule file (*.rules)"
                )
        else:
            raise UsageError(f"{given}: no such file or folder")
    return sorted(scenarios), sorted(rule_files)


# -- the session -------------------------------------------------------------------
RulesLoader = Callable[[Sequence[str]], RuleSet]
"""Compiles rule files (given as shown paths) into one rule set."""


class StepRecorder(Protocol):
    """What a coverage collector offers the runner (:class:`paysplit.coverage.Coverage`)."""

    def instrument(self, rules: RuleSet) -> RuleSet: ...

    def begin_step(self) -> None: ...

    def end_step(
        self, rules: RuleSet, plan: Plan | None, ledger: Ledger, ran: Sequence[str]
    ) -> None: ...


class InlineLedgerError(PaysplitError):
    """An inline ledger that does not load: every problem, each with its line."""

    def __init__(self, file: str, problems: Sequence[tuple[int, str]]) -> None:
        self.file = file
        self.problems = list(problems)
        first = self.problems[0] if self.problems else (0, "")
        super().__init__(f"{file}:{first[0]}: the ledger cannot be loaded: {first[1]}")

    def render(self) -> str:
        noun = "problem" if len(self.problems) == 1 else "problems"
        lines = [
            f"error: the ledger in {self.file} cannot be loaded ({len(self.problems)} {noun}):"
        ]
        lines += [f"  {self.file}:{line}: {message}" for line, message in self.problems]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "errors": [{"line": line, "message": message} for line, message in self.problems],
        }


@dataclass
class Prepared:
    """A scenario file ready to run: its rules compiled and its ledger loaded."""

    file: ScenarioFile
    rules: RuleSet
    ledger: Ledger
    baseline_strict: frozenset[str]


class ScenarioSession:
    """Loads scenario files and runs their scenarios; shared by the pytest plugin and the CLI.

    Plugins are loaded once per session (``disabled`` / ``allowed`` as the CLI's
    ``--disable-plugin`` and ``PAYSPLIT_PLUGINS``); each set of rule files is
    compiled once. With a ``coverage`` collector, the rules run instrumented and
    every step reports which rules ran and which clauses decided something.
    """

    def __init__(
        self,
        *,
        coverage: StepRecorder | None = None,
        disabled: Sequence[str] = (),
        allowed: Sequence[str] | None = None,
        load_rules: RulesLoader | None = None,
    ) -> None:
        self.coverage = coverage
        self.disabled = tuple(disabled)
        self.allowed = None if allowed is None else tuple(allowed)
        self._load_rules = load_rules
        self._plugins: PluginSet | None = None
        self._rules: dict[tuple[str, ...], RuleSet] = {}
        self._prepared: dict[Path, Prepared] = {}

    # -- loading -------------------------------------------------------------------
    @property
    def plugins(self) -> PluginSet:
        """The loaded plugin set (loaded on first use)."""
        if self._plugins is None:
            from paysplit.plugin_manager import load

            allowed = None if self.allowed is None else list(self.allowed)
            self._plugins = load(disabled=list(self.disabled), allowed=allowed)
        return self._plugins

    def compile(self, paths: Sequence[str]) -> RuleSet:
        """Compile rule files into one rule set (cached; instrumented under coverage)."""
        key = tuple(paths)
        cached = self._rules.get(key)
        if cached is not None:
            return cached
        if self._load_rules is not None:
            rules = self._load_rules(list(paths))
        else:
            from paysplit.compiler import load_rules

            rules = load_rules(list(paths), self.plugins)
        if self.coverage is not None:
            rules = self.coverage.instrument(rules)
        self._rules[key] = rules
        return rules

    def load(self, path: str | Path) -> ScenarioFile:
        return load_scenario_file(path)

    def prepare(self, file: ScenarioFile) -> Prepared:
        """Compile the file's rules and load its ledger (once per file)."""
        cached = self._prepared.get(file.path)
        if cached is not None and cached.file == file:
            return cached
        from paysplit.ledger_io import ledger_from_document, load_ledger

        missing = [p for p in file.rules if not p.is_file()]
        if missing:
            raise ScenarioFileError.at(
                file.shown,
                file.rules_line,
                f"rule file {shown_path(missing[0])} does not exist",
                "rule files are named relative to the scenario file",
            )
        rules = self.compile(file.rule_paths_shown)
        if file.ledger_path is not None:
            if not file.ledger_path.is_file():
                raise ScenarioFileError.at(
                    file.shown,
                    file.ledger_line,
                    f"ledger file {shown_path(file.ledger_path)} does not exist",
                    "the ledger is named relative to the scenario file",
                )
            ledger = load_ledger(shown_path(file.ledger_path))
        else:
            assert file.ledger_document is not None
            try:
                ledger = ledger_from_document(
                    file.ledger_document, f"{file.shown}:{file.ledger_line} (ledger)"
                )
            except LedgerError as exc:
                raise InlineLedgerError(
                    file.shown,
                    [
                        (
                            line_of_path(file.ledger_lines, p.path, file.ledger_line),
                            f"ledger.{p.path}: {p.message}" if p.path else p.message,
                        )
                        for p in exc.problems
                    ],
                ) from None
        if file.as_of is not None:
            practice = ledger.practice.model_copy(update={"as_of": file.as_of})
            ledger = ledger.model_copy(update={"practice": practice})
        elif ledger.practice.as_of is None:
            raise ScenarioFileError.at(
                file.shown,
                file.ledger_line,
                "neither the scenario file (as_of:) nor the ledger "
                "(practice.as_of) gives a run date",
                "scenarios must not depend on today's date: add as_of: YYYY-MM-DD",
            )
        prepared = Prepared(
            file=file, rules=rules, ledger=ledger, baseline_strict=strict_problems(ledger)
        )
        self._prepared[file.path] = prepared
        return prepared

    # -- running ---------------------------------------------------------------------
    def run(self, file: ScenarioFile, scenario: Scenario) -> ScenarioResult:
        """Run one scenario from the file's ledger, afresh; never raises for a failure."""
        prepared = self.prepare(file)
        result = ScenarioResult(scenario=scenario)
        ledger = prepared.ledger
        from paysplit.invariants import check_invariants

        broken = check_invariants(ledger)
        if broken:
            result.mismatches.append(
                Mismatch(
                    file.ledger_line,
                    "the scenario file's ledger breaks an invariant before any step",
                    tuple(str(p) for p in broken),
                )
            )
            return result
        strict_before = prepared.baseline_strict
        allowed_negative = False
        count = len(scenario.steps)
        for index, step in enumerate(scenario.steps, start=1):
            outcome = self._step(prepared.rules, ledger, step, index)
            result.steps.append(outcome)
            last = index == count
            if outcome.error is not None:
                if not last or scenario.expect.error is None:
                    result.mismatches.append(
                        Mismatch(step.line, f"step {index} ({step.kind}) failed: {outcome.error}")
                    )
                    return result
                break
            plan = outcome.plan
            assert plan is not None
            if plan.blocked is not None:
                if not last or scenario.expect.blocked in (None, False):
                    result.mismatches.append(
                        Mismatch(
                            step.line,
                            f"step {index} ({step.kind}) was blocked: "
                            + with_clause(plan.blocked.reason, plan.blocked.clause),
                        )
                    )
                    return result
                break
            allowed_negative = allowed_negative or bool(plan.warnings)
            problems = after_step_problems(outcome, strict_before, allowed_negative)
            if problems:
                result.mismatches.append(
                    Mismatch(
                        step.line,
                        f"step {index} ({step.kind}) broke an invariant",
                        tuple(problems),
                    )
                )
                return result
            strict_before = strict_problems(outcome.ledger)
            ledger = outcome.ledger
        result.mismatches.extend(check_expectations(scenario.expect, result.steps[-1]))
        return result

    def _step(self, rules: RuleSet, ledger: Ledger, step: Step, index: int) -> StepOutcome:
        coverage = self.coverage
        if coverage is not None:
            coverage.begin_step()
        plan: Plan | None = None
        error: PaysplitError | None = None
        try:
            plan = _run_step(ledger, rules, step)
        except PaysplitError as exc:
            error = exc
        after = ledger
        if plan is not None and plan.blocked is None:
            try:
                after = apply_plan(ledger, plan)
            except PaysplitError as exc:
                error, plan = exc, None
        if coverage is not None:
            coverage.end_step(rules, plan, after, ran_rules(rules, step, plan))
        return StepOutcome(index=index, step=step, plan=plan, error=error, ledger=after)
