"""``paysplit fmt``: canonical form, comments kept, idempotent, meaning unchanged."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from _language_plugins import stock_set
from _rule_strategies import rule_files
from hypothesis import HealthCheck, given, settings

from paysplit.compiler import compile_source
from paysplit.core_clauses import FieldOrder
from paysplit.expressions import WhereFilter
from paysplit.formatter import format_text
from paysplit.plugin_manager import PluginSet, load
from paysplit.rules import CompiledClause, CompiledRule, RuleSet

ROOT = Path(__file__).resolve().parent.parent
STOCK = sorted((ROOT / "rules").glob("*.rules"))
INSTALLED = load()
TEST_PLUGINS = stock_set()


def fmt(text: str) -> str:
    formatted, errors = format_text(text)
    assert errors == [] and formatted is not None
    return formatted


# --- a structural signature of compiled rules (locations and spelling left out) ----------
def impl_signature(impl: Any) -> Any:
    if isinstance(impl, WhereFilter):
        return ("where", _condition(impl.condition))
    if isinstance(impl, FieldOrder):
        return ("order by", impl.field, impl.descending)
    if dataclasses.is_dataclass(impl):
        fields = dataclasses.fields(impl)
        return (type(impl).__qualname__, tuple((f.name, getattr(impl, f.name)) for f in fields))
    return (type(impl).__qualname__, tuple(sorted(vars(impl).items())))


def _condition(condition: Any) -> Any:
    if hasattr(condition, "items"):
        return (type(condition).__name__, tuple(_condition(c) for c in condition.items))
    leaf = condition
    return (leaf.field, leaf.op, leaf.negated, leaf.values, leaf.other)


def clause_signature(clause: CompiledClause[Any] | None) -> Any:
    if clause is None:
        return None
    return (impl_signature(clause.impl), clause.plugin, clause.kind)


def rule_signature(rule: CompiledRule) -> Any:
    def each(clauses: Any) -> list[Any]:
        return [clause_signature(c) for c in clauses]

    return (
        rule.name,
        rule.title,
        rule.trigger,
        impl_signature(rule.source.impl),
        clause_signature(rule.targets),
        rule.to_installments,
        each(rule.orders),
        sorted(map(repr, each(rule.filters))),
        sorted(map(repr, each(rule.scopes))),
        each(rule.preferences),
        sorted(map(repr, each(rule.guards))),
        clause_signature(rule.distribution),
        clause_signature(rule.leftover),
        sorted(repr(clause_signature(c)) for c in rule.clauses),
    )


def signature(ruleset: RuleSet) -> Any:
    settings = ruleset.settings
    return (
        {name: rule_signature(rule) for name, rule in ruleset.rules.items()},
        settings.default_unearned_type,
        settings.default_rule,
        sorted(repr(clause_signature(g)) for g in settings.guards),
    )


def compiled_signature(text: str, plugins: PluginSet) -> Any:
    ruleset, diagnostics = compile_source(text, "f.rules", plugins)
    return None if ruleset is None else signature(ruleset), [
        (d.severity, d.message) for d in diagnostics
    ]


# --- the stock files ----------------------------------------------------------------
@pytest.mark.parametrize("path", STOCK, ids=lambda p: p.name)
def test_formatting_never_changes_the_compiled_rules_of_a_stock_file(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    formatted = fmt(text)
    before, _ = compiled_signature(text, INSTALLED)
    after, _ = compiled_signature(formatted, INSTALLED)
    assert before is not None and before == after
    assert fmt(formatted) == formatted


def test_the_signature_notices_a_change_of_meaning() -> None:
    text = (ROOT / "rules" / "card.rules").read_text(encoding="utf-8")
    before, _ = compiled_signature(text, INSTALLED)
    changed, _ = compiled_signature(text.replace("due_patient", "due_insurance"), INSTALLED)
    assert before != changed


def test_the_card_in_canonical_form() -> None:
    text = (ROOT / "rules" / "card.rules").read_text(encoding="utf-8")
    assert fmt(text) == (
        "# The design card's example, as one line.\n"
        "rule card:\n"
        "    oldest first where status = due_patient\n"
        "    match provider\n"
        "    no cross-doctor\n"
    )


def test_clause_order_settings_first_spacing_and_comments() -> None:
    text = (
        "# Smile Dental: the house rules.\n"
        "\n"
        "# the everyday rule\n"
        'rule pay   "Pay \\"it\\"" :  # titled\n'
        '    leftover   credit due patient memo "A\\\\B"\n'
        "    # keep these together\n"
        "    match provider,where status=due_patient   and( balance>$5 or not age<90   days )\n"
        "    from unallocated  # pooled\n"
        "    order by balance desc then date, on demand\n"
        "    to installments\n"
        "    where kind in(procedure,debit)\n"
        "rule two: mode due patient, include debits\n"
        "settings:\n"
        "    negative unallocated warn  # 001\n"
        "# trailing thoughts\n"
    )
    assert fmt(text) == (
        "# Smile Dental: the house rules.\n"
        "\n"
        "settings:\n"
        "    negative unallocated warn  # 001\n"
        "\n"
        "# the everyday rule\n"
        'rule pay "Pay \\"it\\"":  # titled\n'
        "    on demand\n"
        "    from unallocated  # pooled\n"
        "    to installments\n"
        "    order by balance desc then date\n"
        "    where status = due_patient and (balance > $5 or not age < 90 days)\n"
        "    where kind in (procedure, debit)\n"
        "    # keep these together\n"
        "    match provider\n"
        '    leftover credit due patient memo "A\\\\B"\n'
        "\n"
        "rule two:\n"
        "    mode due patient\n"
        "    include debits\n"
        "\n"
        "# trailing thoughts\n"
    )
    assert fmt(fmt(text)) == fmt(text)
    before, _ = compiled_signature(text, TEST_PLUGINS)
    after, _ = compiled_signature(fmt(text), TEST_PLUGINS)
    assert before is not None and before == after


def test_a_file_with_syntax_errors_is_not_formatted() -> None:
    formatted, errors = format_text("rule r: where\n")
    assert formatted is None and len(errors) == 1


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_files())
def test_formatting_is_idempotent_and_keeps_meaning(text: str) -> None:
    formatted = fmt(text)
    assert fmt(formatted) == formatted
    assert formatted.count("#") == text.count("#")
    before = compiled_signature(text, TEST_PLUGINS)
    after = compiled_signature(formatted, TEST_PLUGINS)
    assert before[0] == after[0]
    assert (before[0] is None) == (after[0] is None)
    assert _errors(before[1]) == _errors(after[1])
    assert len(before[1]) == len(after[1])


def _errors(diagnostics: list[tuple[str, str]]) -> list[str]:
    """Errors without the line numbers they mention (formatting moves lines)."""
    return sorted(re.sub(r"line \d+", "line N", m) for s, m in diagnostics if s == "error")
