"""The compiler: rule files resolved against a plugin set into a RuleSet."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from _language_plugins import BUILDS, FakeGuard, FakeLeftover, phrase, stock_set

from paysplit import hookimpl
from paysplit.compiler import DEFAULTS, check_files, compile_source, load_rules
from paysplit.core_clauses import FieldOrder, OldestFirst, PaymentSource, PoolSource
from paysplit.errors import Diagnostic, PluginError, RuleFileError
from paysplit.expressions import WhereFilter
from paysplit.phrases import Phrase
from paysplit.plugin_manager import PluginSet, load
from paysplit.rules import CORE, Location, RuleSet

ROOT = Path(__file__).resolve().parent.parent
STOCK = sorted((ROOT / "rules").glob("*.rules"))
PLUGINS = stock_set()


def compiled(text: str, plugins: PluginSet = PLUGINS, file: str = "t.rules") -> RuleSet:
    ruleset, diagnostics = compile_source(text, file, plugins)
    errors = [d for d in diagnostics if d.severity == "error"]
    assert errors == [], "\n".join(d.render() for d in errors)
    assert ruleset is not None
    return ruleset


def errors_of(text: str, plugins: PluginSet = PLUGINS, file: str = "t.rules") -> list[Diagnostic]:
    ruleset, diagnostics = compile_source(text, file, plugins)
    assert ruleset is None
    return [d for d in diagnostics if d.severity == "error"]


# --- the stock files -----------------------------------------------------------------
@pytest.mark.parametrize("plugins", ["installed", "test"])
def test_every_stock_file_compiles(plugins: str) -> None:
    loaded = load() if plugins == "installed" else PLUGINS
    result = check_files(STOCK, loaded)
    assert result.errors == [], "\n".join(d.render() for d in result.errors)
    rules = [name for path in STOCK for name in load_rules([path], loaded).rules]
    assert len(rules) == 13
    with pytest.raises(RuleFileError) as together:  # as one set, their settings clash
        load_rules(STOCK, loaded)
    messages = sorted(d.message for d in together.value.diagnostics)
    assert len(messages) == 2
    assert messages[0].startswith('setting "default rule" is full_payment here but due_patient')
    assert messages[1].startswith('setting "negative unallocated warn" differs from')


def test_the_card_rule_against_the_installed_plugins() -> None:
    ruleset = load_rules([ROOT / "rules" / "card.rules"], load())
    rule = ruleset.rules["card"]
    file = str(ROOT / "rules" / "card.rules")
    assert rule.location == Location(file, 2, 1)
    assert [(c.text, str(c.location), c.plugin, c.kind) for c in rule.clauses] == [
        ("oldest first", f"{file}:2:12", CORE, "order"),
        ("where status=due_patient", f"{file}:2:25", CORE, "filter"),
        ("match provider", f"{file}:2:51", "paysplit.match", "preference"),
        ("no cross-doctor", f"{file}:2:67", "paysplit.cross_doctor", "guard"),
    ]
    assert isinstance(rule.orders[0].impl, OldestFirst)
    assert isinstance(rule.filters[0].impl, WhereFilter)
    assert [g.text for g in rule.guards] == ["no cross-doctor"]
    assert rule.trigger == "payment" and isinstance(rule.source.impl, PaymentSource)
    assert rule.source.location == rule.location and rule.targets is None
    assert ruleset.plugins["paysplit.match"] == "0.1.0"


def test_modes_expand_at_the_mode_clause() -> None:
    ruleset = compiled((ROOT / "rules" / "apply_automatically.rules").read_text(), file="aa.rules")
    plans = ruleset.rules["payment_plans"]
    assert plans.to_installments and plans.targets is None
    assert [(c.text, str(c.location), c.plugin) for c in plans.clauses] == [
        ("to installments", "aa.rules:18:5", "test.modes"),
        ("oldest first", "aa.rules:18:5", "test.modes"),
    ]
    family = ruleset.rules["due_patient_family"]
    assert [(c.text, c.location.column, c.plugin) for c in family.clauses] == [
        ("oldest first", 5, "test.modes"),
        ("where status in (due_patient, pending_patient)", 5, "test.modes"),
        ("include debits", 23, "test.include_debits"),
        ("include dependents", 39, "test.scopes"),
        ("leftover credit due patient", 5, "test.credit_due_to"),
    ]
    assert [s.impl.pattern for s in family.scopes] == ["include debits", "include dependents"]  # type: ignore[attr-defined]
    due_patient = ruleset.rules["due_patient"]
    assert str(due_patient.filters[0].location) == "aa.rules:7:18"
    leftover = due_patient.leftover
    assert leftover is not None and isinstance(leftover.impl, FakeLeftover)
    assert dict(leftover.impl.arguments) == {
        "due_to": "patient",
        "memo": "Account credit",
        "office": "same",
        "provider": "same",
    }
    assert ruleset.settings.default_rule == "due_patient"
    assert ruleset.settings.default_unearned_type == "prepayment"


def test_sources_targets_triggers_and_leftover_keep() -> None:
    ruleset = compiled(
        "rule a: on demand, from unearned type copay\n"
        "rule b: on charge added, from appointment credit, to charges, leftover keep\n"
        "rule c: from unallocated, order by balance desc then charge.date\n"
        "rule d: from unearned\n"
    )
    a, b, c, d = (ruleset.rules[n] for n in "abcd")
    assert a.trigger == "demand" and a.source.impl == PoolSource("copay")
    assert b.trigger == "charge added" and b.source.plugin == "test.scopes"
    assert b.leftover is None and [x.kind for x in b.clauses][-1] == "leftover"
    assert b.targets is None and not b.to_installments
    assert c.source.impl == PoolSource(None) and d.source.impl == PoolSource(None)
    keys = [o.impl for o in c.orders]
    assert all(isinstance(k, FieldOrder) for k in keys)
    assert [(k.field, k.descending) for k in keys] == [("balance", True), ("date", False)]  # type: ignore[attr-defined]
    assert [o.text for o in c.orders] == ["order by balance desc", "then charge.date"]
    assert [r.name for r in ruleset.rules_on("demand")] == ["a"]


def test_settings_defaults_are_in_force_unless_the_settings_name_them() -> None:
    plain = compiled("rule r: oldest first\n")
    assert [(g.text, g.location.file, g.plugin) for g in plain.settings.guards] == [
        ("negative unallocated block", DEFAULTS, "test.guards"),
        ("overpay charge block", DEFAULTS, "test.guards"),
    ]
    named = compiled(
        "settings:\n    negative unallocated warn\n    no cross-doctor\nrule r: oldest first\n"
    )
    assert [(g.text, str(g.location)) for g in named.settings.guards] == [
        ("negative unallocated warn", "t.rules:2:5"),
        ("no cross-doctor", "t.rules:3:5"),
        ("overpay charge block", f"{DEFAULTS}:0:0"),
    ]


def test_build_is_called_once_per_use() -> None:
    BUILDS.clear()
    compiled(
        "rule a: match provider, include account\nrule b: match provider\n"
        "rule c: mode due patient, whole charges only\n"
    )
    assert BUILDS["match provider"] == 2
    assert BUILDS["include account"] == 1
    assert BUILDS["whole charges only"] == 1
    assert BUILDS["negative unallocated {mode:block|warn|allow}"] == 1  # its default


def test_a_vendor_override_is_the_phrase_compiled() -> None:
    class Vendor:
        @hookimpl
        def paysplit_guards(self) -> list[Phrase]:
            return [phrase("whole charges only", "guard", FakeGuard)]

    plugins = stock_set(**{"vendor.whole": Vendor()})
    rule = compiled("rule r: whole charges only\n", plugins).rules["r"]
    assert rule.guards[0].plugin == "vendor.whole"


# --- errors ----------------------------------------------------------------------------
def test_the_unknown_clause_error_of_the_spec() -> None:
    text = "\n".join(
        [
            "# Smile Dental",
            "settings:",
            "    default unearned type prepayment",
            "",
            "rule due_patient:",
            "    oldest first where status in (due_patient, pending_patient)",
            "    no crossdoctor",
            "",
        ]
    )
    (error,) = errors_of(text, load(), file="rules/smile.rules")
    assert error.render() == (
        'rules/smile.rules:7:5: error: unknown clause "no crossdoctor"\n'
        "    no crossdoctor\n"
        "    ^~~~~~~~~~~~~~\n"
        '  did you mean "no cross-doctor"? (from plugin paysplit.cross_doctor)'
    )


def test_a_clause_of_a_disabled_plugin_names_the_plugin() -> None:
    plugins = stock_set(disabled=("test.cross_doctor", "test.modes"))
    errors = errors_of(
        "settings:\n    no cross-doctor\nrule r: oldest first, no cross-doctor, mode collection\n",
        plugins,
    )
    assert [e.message for e in errors] == [
        'setting "no cross-doctor" comes from plugin test.cross_doctor, which is disabled',
        'clause "no cross-doctor" comes from plugin test.cross_doctor, which is disabled',
        'mode "collection" comes from plugin test.modes, which is disabled',
    ]


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("rule r: oldst first\n", 'unknown clause "oldst first"', 'did you mean "oldest first"?'),
        (
            "rule r: includ account\n",
            'unknown clause "includ account"',
            "(from plugin test.scopes)",
        ),
        ("rule r: from unearnd\n", 'unknown source "unearnd"', 'did you mean "from unearned"?'),
        ("rule r: to charge\n", 'unknown target "charge"', 'did you mean "to charges"?'),
        ("rule r: on paymnt\n", 'unknown trigger "on paymnt"', 'did you mean "on payment"?'),
        (
            "rule r: mode due patien\n",
            'unknown mode "due patien"',
            'did you mean "mode due patient"?',
        ),
        ("rule r: leftover credit due patent\n", 'expected "patient" or "insurance"', "patient"),
        ("rule r: leftover credit due patient memo 5\n", "expected a quoted string", ""),
        ("rule r: leftover credit due patient memo", "expected a quoted string after", ""),
        ('rule r: leftover credit due patient memo "a" memo "b"\n', '"memo" is given twice', ""),
        ("rule r: leftover credit due patient colour red\n", 'unexpected "colour"', '"memo"'),
        ("rule r: leftover keep it\n", 'unexpected words in "leftover keep it"', "leftover keep"),
        ("rule r: from unearned type prepaid\n", 'unknown unearned type "prepaid"', ""),
        ("rule r: credit due patient\n", 'is a leftover action: write "leftover credit due', ""),
        ("rule r: from include account\n", "is not a source: write it as a clause", ""),
        ("rule r: negative unallocated warn\n", "is a setting: write it in the settings", ""),
        ("settings:\n    whole charges only\n", "is written in a rule, not in the settings", ""),
        ("settings:\n    oldest first\n", '"oldest first" cannot be a setting', ""),
        ("settings:\n    default unearned type prepaymnt\n", "unknown unearned type", "prepayment"),
        ("settings:\n    default rule\n", 'write "default rule NAME"', ""),
        (
            "settings:\n    default rule nope\nrule yep: oldest first\n",
            'default rule "nope"',
            "yep",
        ),
        ("rule Card: oldest first\n", 'rule name "Card" must be lower-case', "rule card"),
        ("rule r: on demand, on payment\n", 'a rule has one trigger: "on payment" here', ""),
        ("rule r: from payment, from unallocated\n", "a rule has one source", ""),
        ("rule r: leftover keep, leftover credit due patient\n", "a rule has one leftover", ""),
        ("rule r: order by payment.amount\n", "every target has the same payment", ""),
        ("rule r: where status = due_patent\n", 'unknown status "due_patent"', "due_patient"),
        ("rule r: oldest first\nrule r: newest first\n", 'rule "r" is defined twice', ""),
        ("settings:\n    a\nsettings:\n    b\n", "a file has one settings block", ""),
        ("# nothing\n", "the file holds no rules or settings", ""),
    ],
)
def test_errors_with_hints(text: str, message: str, hint: str) -> None:
    errors = errors_of(text)
    assert any(message in e.message and hint in e.hint for e in errors), [
        e.render() for e in errors
    ]


def test_settings_given_twice() -> None:
    (error,) = errors_of(
        "settings:\n    negative unallocated warn\n    negative unallocated allow\n"
        "    default rule r\n    default rule s\nrule r: oldest first\nrule s: oldest first\n"
    )[:1]
    assert error.line == 3 and "given twice with different values" in error.message


def test_a_mode_whose_expansion_fails_is_reported_at_the_mode_clause() -> None:
    from paysplit.phrases import Mode

    class Broken:
        @hookimpl
        def paysplit_modes(self) -> list[Mode]:
            return [Mode("odd", "oldest first where status = odd_status", "odd")]

    (error,) = errors_of("rule r:\n    mode odd\n", stock_set(**{"vendor.odd": Broken()}))
    assert (error.line, error.column) == (2, 5)
    assert error.message.startswith('mode "odd" expands to clauses with a mistake: unknown status')


def test_plugin_build_failures_name_the_plugin() -> None:
    class WrongClass:
        @hookimpl
        def paysplit_guards(self) -> list[Phrase]:
            return [Phrase("hold it", "guard", lambda _a: "not a guard", "holds")]

    class Raises:
        @hookimpl
        def paysplit_guards(self) -> list[Phrase]:
            def build(_arguments: Any) -> Any:
                raise KeyError("oops")

            return [Phrase("hold on", "guard", build, "holds")]

    with pytest.raises(PluginError) as wrong:
        compile_source("rule r: hold it\n", "t.rules", stock_set(**{"vendor.wrong": WrongClass()}))
    assert wrong.value.plugin == "vendor.wrong" and "str, which is not a Guard" in str(wrong.value)
    with pytest.raises(PluginError) as raised:
        compile_source("rule r: hold on\n", "t.rules", stock_set(**{"vendor.raises": Raises()}))
    assert raised.value.plugin == "vendor.raises" and "KeyError" in str(raised.value)


# --- several files -----------------------------------------------------------------------
def test_several_files_are_one_rule_set(tmp_path: Path) -> None:
    shared = tmp_path / "shared.rules"
    shared.write_text("settings:\n    default rule pay\n    no cross-doctor\n")
    rules = tmp_path / "pay.rules"
    rules.write_text("settings:\n    no cross-doctor\nrule pay: oldest first\n")
    ruleset = load_rules([shared, rules], PLUGINS)
    assert list(ruleset.rules) == ["pay"] and ruleset.settings.default_rule == "pay"
    assert ruleset.settings.guards[0].text == "no cross-doctor"
    # on its own, the shared file names a rule it does not have
    assert check_files([shared], PLUGINS).errors[0].message.startswith('default rule "pay"')


def test_a_rule_or_setting_defined_differently_in_two_files_names_both(tmp_path: Path) -> None:
    first = tmp_path / "a.rules"
    first.write_text("settings:\n    negative unallocated warn\nrule pay: oldest first\n")
    second = tmp_path / "b.rules"
    second.write_text("settings:\n    negative unallocated block\n\nrule pay: newest first\n")
    with pytest.raises(RuleFileError) as error:
        load_rules([first, second], PLUGINS)
    messages = sorted(d.render() for d in error.value.diagnostics)
    assert len(messages) == 2
    assert f'rule "pay" is defined twice: here and at {first}:3:1' in messages[0] or any(
        f"is defined twice: here and at {first}:3:1" in m for m in messages
    )
    assert any(f"{first}:2:5" in m and "differs from" in m for m in messages)


def test_load_rules_reports_unreadable_files(tmp_path: Path) -> None:
    binary = tmp_path / "x.rules"
    binary.write_bytes(b"\x00\x01")
    with pytest.raises(RuleFileError) as error:
        load_rules([binary, tmp_path / "missing.rules"], PLUGINS)
    assert len(error.value.diagnostics) == 2


def test_the_digest_covers_the_text_and_the_plugin_versions() -> None:
    text = "rule r: oldest first\n"
    first = compiled(text).digest
    assert compiled(text).digest == first
    assert compiled(text + "# changed\n").digest != first
    newer = PluginSet.from_plugins(__import__("_language_plugins").stock(), version="0.0.1")
    assert compiled(text, newer).digest != first
    assert len(first) == 64 and compiled(text).vocabulary == PLUGINS.vocabulary


def test_no_follow_on_error_for_a_rule_whose_header_is_wrong() -> None:
    (error,) = errors_of("settings:\n    default rule pay\nrule pay oops: oldest first\n")
    assert error.line == 3 and error.message.startswith('expected ":"')


def test_a_mode_that_expands_into_itself_stops() -> None:
    from paysplit.phrases import Mode

    class Loop:
        @hookimpl
        def paysplit_modes(self) -> list[Mode]:
            return [Mode("loop", "oldest first, mode loop", "forever")]

    (error,) = errors_of("rule r: mode loop\n", stock_set(**{"vendor.loop": Loop()}))
    assert (error.line, error.column) == (1, 9)
    assert "expands into modes more than 4 deep" in error.message


# --- plugins left off PAYSPLIT_PLUGINS ----------------------------------------------------
def test_an_unknown_phrase_names_the_plugins_the_allow_list_leaves_out() -> None:
    """A plugin left off the allow-list is never imported, so whether a phrase is its own
    cannot be known: the hint says it may be, naming the plugins left out."""
    plugins = load(allowed=["paysplit.vocabulary", "paysplit.match"])
    note = (
        "it may come from a plugin that PAYSPLIT_PLUGINS does not allow "
        "(paysplit.apply_automatically, paysplit.appointment_credit, paysplit.credit_due_to, "
        "paysplit.cross_doctor, ...); add that plugin to PAYSPLIT_PLUGINS"
    )
    errors = errors_of(
        "settings:\n    no cross-doctor\n"
        "rule r: oldest first where status = colection, no cross-doctor, mode collection, "
        "match provder\n",
        plugins,
    )
    assert [(e.line, e.message, e.hint) for e in errors] == [
        (2, 'unknown clause "no cross-doctor"', note),
        (3, 'unknown status "colection"', f"did you mean collection?; or {note}"),
        (3, 'unknown clause "no cross-doctor"', note),
        (3, 'unknown mode "collection"', f"known modes: (none loaded); or {note}"),
        (3, 'unknown clause "match provder"',
         f'did you mean "match provider"? (from plugin paysplit.match); or {note}'),
    ]  # fmt: skip
    everything = errors_of("rule r: oldest first, match provder\n", load())
    assert [e.hint for e in everything] == [
        'did you mean "match provider"? (from plugin paysplit.match)'
    ]


# --- hostile sizes: at most 50 diagnostics per file, no suggestion for a huge word --------
def test_errors_past_fifty_in_a_file_are_counted_not_listed(tmp_path: Path) -> None:
    path = tmp_path / "many.rules"
    path.write_text("".join(f"rule r{n}:\n    mach provider\n" for n in range(120)))
    checked = check_files([path], load())
    assert len(checked.errors) == 51
    assert [(e.line, e.message) for e in checked.errors[48:]] == [
        (98, 'unknown clause "mach provider"'),
        (100, 'unknown clause "mach provider"'),
        (102, "... and 70 more errors in this file (the first 50 are listed)"),
    ]
    assert checked.errors[-1].hint == "fix these first"
    with pytest.raises(RuleFileError) as refused:
        load_rules([path], load())
    assert refused.value.diagnostics == checked.errors


def test_each_file_has_its_own_fifty(tmp_path: Path) -> None:
    paths = [tmp_path / "a.rules", tmp_path / "b.rules"]
    for number, path in enumerate(paths):
        path.write_text(
            "".join(f"rule {path.stem}{n}:\n    mach provider\n" for n in range(51 + number))
        )
    with pytest.raises(RuleFileError) as refused:
        load_rules(paths, load())
    assert [(Path(d.file).name, d.message) for d in refused.value.diagnostics[49:52]] == [
        ("a.rules", 'unknown clause "mach provider"'),
        ("a.rules", "... and 1 more error in this file (the first 50 are listed)"),
        ("b.rules", 'unknown clause "mach provider"'),
    ]
    assert refused.value.diagnostics[-1].message == (
        "... and 2 more errors in this file (the first 50 are listed)"
    )


@pytest.mark.parametrize(
    "clause", ["{word}", "match {word}", "from {word}", "to {word}", "leftover {word}"]
)
def test_a_huge_unknown_word_gets_no_suggestion_and_costs_nothing(clause: str) -> None:
    word = "a" * 60_000
    started = time.perf_counter()
    (error,) = errors_of(f"rule r:\n    {clause.format(word=word)}\n", load())
    assert time.perf_counter() - started < 1.0  # comparing it with every phrase took seconds
    assert error.message.startswith("unknown ") and error.hint == ""
    if clause in ("{word}", "match {word}"):  # the others cannot be settings at all
        (setting,) = errors_of(f"settings:\n    {clause.format(word=word)}\n", load())
        assert setting.hint == ""
