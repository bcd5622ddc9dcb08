"""``paysplit test``: run scenario files without pytest, with rule coverage.

The same engine as the pytest plugin (:class:`paysplit.scenarios.ScenarioSession`):
every ``*.scenario.yaml`` under the paths given (default: the working folder)
runs, each failure prints its file, line, diff and trace, and ``--coverage``
reports which rules ran and which clauses decided something, per rule file.
Every ``*.rules`` file found under a folder given counts for coverage, even
when no scenario uses it, so a rule without a scenario shows up as not run.

Exit codes: 0 every scenario passed (and coverage reached ``--fail-under``),
1 a scenario failed or coverage is below ``--fail-under``, 2 a scenario file
(or its rules or ledger) could not be loaded.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import click

from paysplit.cli.common import (
    allowed_plugins,
    common_options,
    disabled_plugins,
    echo,
    echo_err,
    emit_json,
    options,
)
from paysplit.coverage import Coverage, CoverageReport, parse_percent, percent_text
from paysplit.errors import PaysplitError
from paysplit.scenarios import ScenarioResult, ScenarioSession, discover, shown_path

FAILED = 1
BAD_INPUT = 2


def _percent(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Fraction | None:
    if value is None:
        return None
    try:
        return parse_percent(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--coverage", "with_coverage", is_flag=True, help="Report rule coverage.")
@click.option(
    "--fail-under",
    "fail_under",
    metavar="PERCENT",
    default=None,
    callback=_percent,
    help="Exit 1 when rule coverage is below PERCENT (implies --coverage).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only failures and the summary.")
@common_options
def test_command(
    paths: tuple[str, ...], with_coverage: bool, fail_under: Fraction | None, quiet: bool
) -> None:
    """Run scenario files (*.scenario.yaml): the rule-file tests the pytest plugin runs.

    \b
    Examples:
      paysplit test rules/
      paysplit test rules/oasis.scenario.yaml
      paysplit test rules/ --coverage --fail-under 100
    """
    as_json = options().json
    coverage = Coverage() if with_coverage or fail_under is not None else None
    session = ScenarioSession(
        coverage=coverage, disabled=disabled_plugins(), allowed=allowed_plugins()
    )
    scenario_paths, rule_paths = discover(list(paths) or ["."])
    results: list[ScenarioResult] = []
    errors: list[PaysplitError] = []
    for path in scenario_paths:
        try:
            file = session.load(path)
            session.prepare(file)
        except PaysplitError as exc:
            errors.append(exc)
            if not as_json:
                echo_err(exc.render())
            continue
        for scenario in file.scenarios:
            result = session.run(file, scenario)
            results.append(result)
            if as_json:
                continue
            if result.passed:
                if not quiet:
                    echo(f"PASS  {scenario.where}  {scenario.name}")
            else:
                echo(f"FAIL  {scenario.where}  {scenario.name}")
                echo(result.render())
    report: CoverageReport | None = None
    if coverage is not None:
        for path in rule_paths:
            try:
                coverage.add_rules(session.compile([shown_path(path)]))
            except PaysplitError as exc:
                errors.append(exc)
                if not as_json:
                    echo_err(exc.render())
        report = coverage.report()
    failed = [r for r in results if not r.passed]
    below = report is not None and report.below(fail_under)
    if as_json:
        document: dict[str, Any] = {
            "scenarios": [r.to_json() for r in results],
            "passed": len(results) - len(failed),
            "failed": len(failed),
            "errors": [_error_json(e) for e in errors],
            "coverage": None if report is None else report.to_json(),
            "fail_under": None if fail_under is None else percent_text(fail_under),
            "below_fail_under": below,
        }
        emit_json(document)
    else:
        if report is not None:
            echo("")
            echo(report.render())
        summary = f"{len(results) - len(failed)} passed, {len(failed)} failed"
        if errors:
            summary += f", {len(errors)} file(s) could not be loaded"
        if not scenario_paths:
            summary = "no scenario files found (*.scenario.yaml); " + summary
        echo("")
        echo(summary)
        if report is not None and fail_under is not None:
            verdict = "is below" if below else "reaches"
            echo(
                f"rule coverage {percent_text(report.percent)} {verdict} "
                f"--fail-under {percent_text(fail_under)}"
            )
    if errors:
        raise click.exceptions.Exit(BAD_INPUT)
    if failed or below:
        raise click.exceptions.Exit(FAILED)


def _error_json(error: PaysplitError) -> dict[str, Any]:
    document = error.to_json()
    document.setdefault("message", str(error))
    return document


COMMANDS: list[click.Command] = [test_command]
