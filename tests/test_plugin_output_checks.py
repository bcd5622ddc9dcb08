"""One bad plugin never corrupts a ledger: what a plugin returns is checked.

Each deliberately broken plugin is installed as a real distribution (an entry
point in the ``paysplit`` group, see :func:`scenario_support.fake_distribution`)
and run through the command line with ``--in-place``: the run must end in one
error that names the plugin, exit 2, and leave the ledger file byte for byte
as it was.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
from scenario_support import fake_distribution, run_cli

from paysplit.compiler import load_rules
from paysplit.plugin_manager import PluginSet
from paysplit.scenarios import ScenarioSession, parse_scenario_text

LEDGER = {
    "format": "paysplit-ledger/1",
    "practice": {"name": "Test Dental", "currency": "USD", "as_of": "2025-03-01"},
    "providers": [{"id": "DR1"}],
    "accounts": [
        {
            "id": "A1",
            "patients": [{"id": "P1"}],
            "charges": [
                {
                    "id": "C1",
                    "patient": "P1",
                    "provider": "DR1",
                    "date": "2025-01-05",
                    "amount": "100.00",
                    "status": "due_patient",
                },
                {
                    "id": "C2",
                    "patient": "P1",
                    "provider": "DR1",
                    "date": "2025-01-10",
                    "amount": "50.00",
                    "status": "due_patient",
                },
            ],
            "payments": [
                {
                    "id": "PAY1",
                    "patient": "P1",
                    "payer": "patient",
                    "provider": "DR1",
                    "date": "2025-02-01",
                    "type": "payment",
                    "amount": "120.00",
                }
            ],
        }
    ],
}

HEADER = """
from paysplit import hookimpl
from paysplit.ledger import Payment
from paysplit.phrases import Phrase
from paysplit.policy import Distribution, Filter, Guard, LeftoverHandler, Scope, Source
"""


def phrase_plugin(hook: str, pattern: str, kind: str, implementation: str) -> str:
    """A plugin module declaring one phrase whose implementation is ``Impl``."""
    return (
        HEADER
        + implementation
        + f"""

@hookimpl
def {hook}():
    return [Phrase(pattern={pattern!r}, kind={kind!r}, build=lambda args: Impl(),
                   summary="deliberately broken")]
"""
    )


BROKEN: dict[str, tuple[str, str, str]] = {
    # name: (module source, the rule that uses it, what the error must say)
    "over_credit": (
        phrase_plugin(
            "paysplit_phrases",
            "spread everything",
            "distribution",
            """
class Impl(Distribution):
    def propose(self, credit, targets):
        return [(t.id, t.allocatable) for t in targets]  # 150.00 of a 120.00 payment
""",
        ),
        "rule r: oldest first, spread everything",
        "proposed 150.00 in all, more than the 120.00 of credit there is",
    ),
    "over_charge": (
        phrase_plugin(
            "paysplit_phrases",
            "spread too much",
            "distribution",
            """
class Impl(Distribution):
    def propose(self, credit, targets):
        return [(targets[1].id, 60_00)]  # C2 owes 50.00
""",
        ),
        "rule r: oldest first, spread too much",
        "proposed 60.00 for C2, more than the 50.00 it allows",
    ),
    "negative": (
        phrase_plugin(
            "paysplit_phrases",
            "spread negative",
            "distribution",
            """
class Impl(Distribution):
    def propose(self, credit, targets):
        return [(targets[0].id, -500)]
""",
        ),
        "rule r: oldest first, spread negative",
        "proposed -500 for C1: a split must be a positive amount",
    ),
    "unknown_target": (
        phrase_plugin(
            "paysplit_phrases",
            "spread to nowhere",
            "distribution",
            """
class Impl(Distribution):
    def propose(self, credit, targets):
        return [("NOPE", 100)]
""",
        ),
        "rule r: oldest first, spread to nowhere",
        "proposed a split to 'NOPE', which is not a target here",
    ),
    "raises": (
        phrase_plugin(
            "paysplit_phrases",
            "explode on filter",
            "filter",
            """
class Impl(Filter):
    def skip_reason(self, target, payment):
        raise RuntimeError("boom")
""",
        ),
        "rule r: oldest first, explode on filter",
        "failed in skip_reason: RuntimeError: boom",
    ),
    "leftover_garbage": (
        phrase_plugin(
            "paysplit_leftover_handlers",
            "garbage credit",
            "leftover",
            """
class Impl(LeftoverHandler):
    def leftover(self, payment, amount):
        return "garbage"
""",
        ),
        "rule r: oldest first where status = due_insurance, leftover garbage credit",
        "returned 'garbage' from leftover (expected a CreditNote)",
    ),
    "guard_garbage": (
        phrase_plugin(
            "paysplit_guards",
            "guard with garbage",
            "guard",
            """
class Impl(Guard):
    def check_split(self, split):
        return 42
""",
        ),
        "rule r: oldest first, guard with garbage",
        "returned 42 from check_split (expected Refuse, Warn or None)",
    ),
    "stolen_credit": (
        phrase_plugin(
            "paysplit_phrases",
            "stolen credit",
            "source",
            """
class Impl(Source):
    pooled = True

    def credit(self, request):
        return [Payment(id="GHOST", patient="P1", payer="patient", date="2025-01-01",
                        type="payment", amount="999.00")]
""",
        ),
        "rule r: on demand, from stolen credit, oldest first",
        "returned 'GHOST', which is not a payment of this account",
    ),
    "strangers": (
        phrase_plugin(
            "paysplit_phrases",
            "include strangers",
            "scope",
            """
class Impl(Scope):
    def target_patients(self, account, patient):
        return ["NOBODY"]
""",
        ),
        "rule r: oldest first, include strangers",
        "named 'NOBODY', which is not a patient of this account",
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_plugin_is_refused_by_name_and_the_ledger_is_untouched(
    name: str, tmp_path: Path
) -> None:
    source, rule, message = BROKEN[name]
    plugin = f"broken_{name}"
    site = fake_distribution(
        tmp_path / "site", f"broken-{name}", "0.0.1", {plugin: source}, {plugin: plugin}
    )
    ledger = tmp_path / "ledger.json"
    ledger.write_text(json.dumps(LEDGER, indent=2), encoding="utf-8")
    before = ledger.read_bytes()
    (tmp_path / "r.rules").write_text(rule + "\n", encoding="utf-8")
    target = ["--account", "A1"] if "from " in rule else ["--payment", "PAY1"]
    done = run_cli(
        "apply",
        "--ledger",
        ledger,
        "--rules",
        "r.rules",
        "--rule",
        "r",
        *target,
        "--in-place",
        cwd=tmp_path,
        pythonpath=[site],
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"plugin {plugin}:" in done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert ledger.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.json", "r.rules", "site"]


def test_a_plugin_that_fails_to_declare_is_named_and_nothing_runs(tmp_path: Path) -> None:
    source = HEADER + "\n@hookimpl\ndef paysplit_guards():\n    raise ValueError('oops')\n"
    site = fake_distribution(
        tmp_path / "site",
        "broken-declaring",
        "0.0.1",
        {"broken_declaring": source},
        {"broken_declaring": "broken_declaring"},
    )
    ledger = tmp_path / "ledger.json"
    ledger.write_text(json.dumps(LEDGER), encoding="utf-8")
    before = ledger.read_bytes()
    (tmp_path / "r.rules").write_text("rule r: oldest first\n", encoding="utf-8")
    done = run_cli(
        "apply",
        "--ledger",
        ledger,
        "--rules",
        tmp_path / "r.rules",
        "--rule",
        "r",
        "--payment",
        "PAY1",
        "--in-place",
        pythonpath=[site],
    )
    assert done.returncode == 2, done.stderr
    assert "broken_declaring" in done.stderr and "oops" in done.stderr
    assert ledger.read_bytes() == before


def test_a_scenario_reports_a_broken_plugin_by_name(tmp_path: Path) -> None:
    module = types.ModuleType("broken_in_process")
    exec(BROKEN["over_credit"][0], module.__dict__)
    plugins = PluginSet.from_plugins({"broken_in_process": module})
    (tmp_path / "r.rules").write_text(BROKEN["over_credit"][1] + "\n", encoding="utf-8")
    (tmp_path / "ledger.json").write_text(json.dumps(LEDGER), encoding="utf-8")
    file = parse_scenario_text(
        "rules: [r.rules]\nledger: ledger.json\nscenarios:\n"
        "  - {name: unexpected, apply: {rule: r, payment: PAY1}}\n"
        "  - name: expected\n    apply: {rule: r, payment: PAY1}\n"
        "    expect: {error: 'plugin broken_in_process'}\n",
        tmp_path / "x.scenario.yaml",
    )
    session = ScenarioSession(load_rules=lambda paths: load_rules(paths, plugins))
    unexpected, expected = (session.run(file, s) for s in file.scenarios)
    assert not unexpected.passed
    assert "step 1 (apply) failed: plugin broken_in_process: clause 'spread everything'" in (
        unexpected.render()
    )
    assert expected.passed, expected.render()
