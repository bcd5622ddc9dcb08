"""The example third-party plugin (examples/vendor-plugin), installed with pip from its folder.

It is installed into a throw-away virtual environment layered over the
development one (see :class:`scenario_support.TempVenv`): the development
environment is never changed, and nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from scenario_support import VENDOR_PLUGIN, TempVenv

LEDGER = {
    "format": "paysplit-ledger/1",
    "practice": {"name": "Smile Dental", "currency": "USD", "as_of": "2025-03-01"},
    "providers": [{"id": "DR1"}],
    "accounts": [
        {
            "id": "A1",
            "patients": [{"id": "P1"}],
            "charges": [
                {
                    "id": "FEE",
                    "patient": "P1",
                    "provider": "DR1",
                    "date": "2024-12-02",
                    "code": "D9986",
                    "amount": "40.00",
                    "status": "due_patient",
                },
                {
                    "id": "FILL",
                    "patient": "P1",
                    "provider": "DR1",
                    "date": "2025-01-10",
                    "code": "D2391",
                    "amount": "150.00",
                    "status": "due_patient",
                },
            ],
            "payments": [
                {
                    "id": "PAY1",
                    "patient": "P1",
                    "payer": "patient",
                    "provider": "DR1",
                    "date": "2025-02-20",
                    "type": "payment",
                    "amount": "100.00",
                }
            ],
        }
    ],
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TempVenv, Path]]:
    """The plugin's folder copied (so the build leaves nothing in the repository) and
    installed with ``pip install FOLDER`` into a temporary environment."""
    work = tmp_path_factory.mktemp("vendor")
    copy = work / "vendor-plugin"
    shutil.copytree(
        VENDOR_PLUGIN,
        copy,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"),
    )
    venv = TempVenv(work / "venv")
    done = venv.pip_install(copy)
    assert done.returncode == 0, done.stderr
    yield venv, copy


def test_pip_installs_it_from_its_folder(installed: tuple[TempVenv, Path]) -> None:
    venv, _ = installed
    found = venv.run(
        "-c",
        "from importlib.metadata import distribution as d; "
        "x = d('paysplit-dental-extras'); "
        "print(x.version, [(e.group, e.name, e.value) for e in x.entry_points])",
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == (
        "1.0.0 [('paysplit', 'dental_extras', 'paysplit_dental_extras')]"
    )


def test_paysplit_plugins_lists_it_with_what_it_supplies(installed: tuple[TempVenv, Path]) -> None:
    venv, _ = installed
    listed = venv.paysplit("plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    extras = plugins["dental_extras"]
    assert extras["version"] == "1.0.0"
    assert extras["distribution"] == "paysplit-dental-extras"
    assert extras["builtin"] is False and extras["enabled"] is True
    assert [(p["pattern"], p["kind"]) for p in extras["phrases"]] == [
        ("skip codes {codes:words}", "filter"),
        ("only codes {codes:words}", "filter"),
        ("no stale credit for collection {days:days}", "guard"),
    ]
    assert list(extras["statuses"]) == ["disputed"]
    assert "paysplit.cross_doctor" in plugins  # the built-ins load alongside it
    human = venv.paysplit("plugins")
    assert "dental_extras" in human.stdout and "skip codes" in human.stdout


def test_its_phrase_works_in_a_rule_file(installed: tuple[TempVenv, Path], tmp_path: Path) -> None:
    venv, _ = installed
    (tmp_path / "ledger.json").write_text(json.dumps(LEDGER), encoding="utf-8")
    (tmp_path / "front.rules").write_text(
        "rule front: oldest first, skip codes (D9986, D9987)\n", encoding="utf-8"
    )
    checked = venv.paysplit("check", "front.rules", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    applied = venv.paysplit(
        "apply",
        "--ledger",
        "ledger.json",
        "--rules",
        "front.rules",
        "--rule",
        "front",
        "--payment",
        "PAY1",
        "--json",
        cwd=tmp_path,
    )
    assert applied.returncode == 0, applied.stderr
    plan = json.loads(applied.stdout)
    assert [(s["charge"], s["amount"]) for s in plan["splits"]] == [("FILL", "100.00")]
    (skipped,) = [t for t in plan["trace"] if t["target"] == "FEE"]
    assert skipped["used"] is False
    assert skipped["reason"] == "FEE has code D9986, which this rule never pays automatically"
    assert skipped["clause"] == "front.rules:1:27"


def test_disabled_its_phrases_are_refused_naming_it(installed: tuple[TempVenv, Path]) -> None:
    venv, copy = installed
    rules = copy / "rules" / "smile_dental.rules"
    checked = venv.paysplit("check", rules, "--disable-plugin", "dental_extras")
    assert checked.returncode == 1
    assert (
        'clause "skip codes (D9986, D9987)" comes from plugin dental_extras, which is disabled'
        in checked.stderr
    )
    assert 'status "disputed" comes from plugin dental_extras' in checked.stderr


def test_its_own_tests_and_scenarios_are_green(installed: tuple[TempVenv, Path]) -> None:
    venv, copy = installed
    ran = venv.run("-m", "pytest", *venv.pytest_args(), "-p", "no:cacheprovider", cwd=copy)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert " passed" in ran.stdout and "failed" not in ran.stdout
    assert "rules/smile_dental.scenario.yaml ......" in ran.stdout


def test_paysplit_test_runs_its_scenarios_with_full_coverage(
    installed: tuple[TempVenv, Path],
) -> None:
    venv, copy = installed
    ran = venv.paysplit("test", "rules", "--coverage", "--fail-under", "100", cwd=copy)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "rules/smile_dental.rules" in ran.stdout
    assert "3/3" in ran.stdout and "12/12" in ran.stdout
    assert "6 passed, 0 failed" in ran.stdout
