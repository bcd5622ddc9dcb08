"""The plugin manager: finding, ordering, disabling and checking plugins."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from _language_plugins import FakeGuard, FakeScope, phrase, stock, stock_set

from paysplit import hookimpl, plugin_manager
from paysplit.errors import PluginError, UsageError
from paysplit.phrases import LedgerReader, Mode, Phrase, Vocabulary
from paysplit.plugin_manager import PluginSet, load


# --- the installed plugins ---------------------------------------------------------
def test_load_registers_every_builtin_with_its_distribution_version() -> None:
    plugins = load()
    builtins = [p for p in plugins.plugins if p.builtin]
    names = [p.name for p in builtins]
    assert names == sorted(names) and len(names) == 14
    assert plugins.plugins[: len(builtins)] == tuple(builtins)  # built-ins first
    assert "paysplit.cross_doctor" in names and "paysplit.vocabulary" in names
    for info in builtins:
        assert info.distribution == "paysplit" and info.version == "0.1.0"
        assert info.enabled and plugins.manager.get_plugin(info.name) is not None
    assert plugins.versions["paysplit.match"] == "0.1.0"


def test_load_exposes_phrases_by_kind_with_their_plugin() -> None:
    plugins = load()
    guards = {e.pattern.head: e for e in plugins.phrases["guard"]}
    assert guards["no cross-doctor"].plugin == "paysplit.cross_doctor"
    assert guards["no cross-doctor"].version == "0.1.0"
    assert {e.pattern.head for e in plugins.phrases["preference"]} == {
        "match provider",
        "match office",
        "match patient",
    }
    assert [e.pattern.head for e in plugins.in_namespace("leftover")] == ["credit due"]
    assert [e.pattern.head for e in plugins.in_namespace("source")] == ["appointment credit"]
    assert set(plugins.modes) == {"due patient", "due insurance", "collection", "payment plans"}
    assert "due_patient" in plugins.vocabulary.statuses
    assert plugins.vocabulary.opt_in_kinds == frozenset({"debit"})
    assert plugins.word_origin("kinds", "debit") == "paysplit.include_debits"
    assert plugins.word_origin("statuses", "collection") == "paysplit.vocabulary"


def test_a_disabled_plugin_is_not_registered_but_remembered() -> None:
    plugins = load(disabled=["paysplit.cross_doctor", "paysplit.include_debits"])
    info = plugins.info("paysplit.cross_doctor")
    assert info is not None and info.status == "disabled"
    assert plugins.manager.get_plugin("paysplit.cross_doctor") is None
    assert "paysplit.cross_doctor" not in plugins.versions
    assert all(e.plugin != "paysplit.cross_doctor" for e in plugins.phrases["guard"])
    assert [e.pattern.head for e in info.phrases] == ["no cross-doctor"]
    assert "debit" not in plugins.vocabulary.kinds
    assert plugins.disabled_word("kinds", "debit") == "paysplit.include_debits"


def test_unknown_names_are_usage_errors_listing_the_installed_plugins() -> None:
    with pytest.raises(UsageError) as disabled:
        load(disabled=["paysplit.cross_docter"])
    assert "paysplit.cross_docter" in str(disabled.value)
    assert "paysplit.cross_doctor" in str(disabled.value)
    with pytest.raises(UsageError) as allowed:
        load(allowed=["nope"])
    assert "installed plugins: paysplit.apply_automatically" in str(allowed.value)


def test_the_allow_list_keeps_everything_else_unimported(monkeypatch: pytest.MonkeyPatch) -> None:
    imported: list[str] = []

    @dataclass
    class FakeDist:
        name: str
        version: str

    class FakePoint:
        def __init__(self, name: str, dist: str, plugin: object) -> None:
            self.name = name
            self.dist = FakeDist(dist, "9.1" if dist != "paysplit" else "0.1.0")
            self.plugin = plugin

        def load(self) -> object:
            imported.append(self.name)
            if self.plugin is None:
                raise ImportError("broken on purpose")
            return self.plugin

    points = [
        FakePoint("vendor.broken", "vendor-broken", None),
        FakePoint("vendor.z", "vendor-z", stock()["test.guards"]),
        FakePoint("paysplit.vocabulary", "paysplit", stock()["test.vocabulary"]),
    ]
    monkeypatch.setattr(plugin_manager, "entry_points", lambda group: points)
    plugins = load(allowed=["paysplit.vocabulary", "vendor.z"])
    assert imported == ["paysplit.vocabulary", "vendor.z"]
    assert [p.name for p in plugins.plugins] == ["paysplit.vocabulary", "vendor.broken", "vendor.z"]
    assert plugins.info("vendor.broken").status == "not allowed"  # type: ignore[union-attr]
    assert plugins.versions == {"paysplit.vocabulary": "0.1.0", "vendor.z": "9.1"}

    imported.clear()
    with pytest.raises(PluginError) as broken:
        load()
    assert broken.value.plugin == "vendor.broken"
    assert "cannot be imported" in str(broken.value)

    quiet = load(disabled=["vendor.broken"])  # disabling sets a broken plugin aside
    assert quiet.info("vendor.broken").note.startswith("declarations unknown")  # type: ignore[union-attr]


# --- ordering and overrides ------------------------------------------------------------
def test_a_later_plugin_with_the_same_fixed_words_overrides_and_is_recorded() -> None:
    class Vendor:
        @hookimpl
        def paysplit_guards(self) -> list[Phrase]:
            return [phrase("no cross-doctor", "guard", FakeGuard, where="both")]

        @hookimpl
        def paysplit_modes(self) -> list[Mode]:
            return [Mode("collection", "oldest first", "vendor collection")]

    plugins = stock_set(**{"vendor.doctors": Vendor()})
    winner = [e for e in plugins.phrases["guard"] if e.pattern.head == "no cross-doctor"]
    assert [e.plugin for e in winner] == ["vendor.doctors"]
    assert plugins.modes["collection"].plugin == "vendor.doctors"
    overridden = {(o.what, o.name, o.plugin, o.replaced) for o in plugins.overrides}
    assert ("phrase", "no cross-doctor", "vendor.doctors", "test.cross_doctor") in overridden
    assert ("mode", "collection", "vendor.doctors", "test.modes") in overridden


def test_installed_orders_builtins_first_then_vendors_sorted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dist = SimpleNamespace
    points = [
        SimpleNamespace(name="a.vendor", dist=dist(name="a", version="1"), load=lambda: None),
        SimpleNamespace(name="z.builtin", dist=dist(name="paysplit", version="0"), load=None),
        SimpleNamespace(name="b.builtin", dist=dist(name="paysplit", version="0"), load=None),
    ]
    monkeypatch.setattr(plugin_manager, "entry_points", lambda group: points)
    assert [c.name for c in plugin_manager.installed()] == ["b.builtin", "z.builtin", "a.vendor"]


def test_every_declaration_hook_is_called_once_per_load() -> None:
    calls: Counter[str] = Counter()

    class Counting:
        @hookimpl
        def paysplit_phrases(self) -> list[Phrase]:
            calls["phrases"] += 1
            return [phrase("include family", "scope", FakeScope)]

        @hookimpl
        def paysplit_guards(self) -> list[Phrase]:
            calls["guards"] += 1
            return []

        @hookimpl
        def paysplit_leftover_handlers(self) -> list[Phrase]:
            calls["leftover"] += 1
            return []

        @hookimpl
        def paysplit_modes(self) -> list[Mode]:
            calls["modes"] += 1
            return []

        @hookimpl
        def paysplit_vocabulary(self) -> Vocabulary:
            calls["vocabulary"] += 1
            return Vocabulary(statuses={"on_hold": "held"})

        @hookimpl
        def paysplit_ledger_readers(self) -> list[LedgerReader]:
            calls["readers"] += 1
            return [LedgerReader("csv", "a CSV export", lambda _path: {})]

    plugins = PluginSet.from_plugins({"vendor.counting": Counting()}, version="2.0")
    assert set(calls.values()) == {1} and len(calls) == 6
    assert plugins.ledger_readers["csv"].plugin == "vendor.counting"
    assert plugins.versions == {"vendor.counting": "2.0"}
    assert plugins.word_origin("statuses", "on_hold") == "vendor.counting"


# --- bad plugins ------------------------------------------------------------------------
def _guards(*declared: Any) -> object:
    class Bad:
        @hookimpl
        def paysplit_guards(self) -> Any:
            return list(declared)

    return Bad()


@pytest.mark.parametrize(
    ("declared", "says"),
    [
        (phrase("no {x:colour}", "guard", FakeGuard), "unknown argument type 'colour'"),
        (phrase("[maybe {x:word}]", "guard", FakeGuard), "must start with a fixed word"),
        (phrase("hold [on]", "guard", FakeGuard), "must hold an argument"),
        (phrase("hold it", "scope", FakeScope), "a scope phrase cannot come from paysplit_guards"),
        (phrase("hold it", "sideways", FakeGuard), "unknown kind 'sideways'"),
        (phrase("where it", "guard", FakeGuard), '"where" is core syntax'),
        (phrase("default rule x", "guard", FakeGuard), "hide a core setting"),
        (phrase("hold {x:word}", "guard", FakeGuard, default="hold"), "default"),
        (
            phrase("hold {x:word}", "guard", FakeGuard, where="settings", default="hold 5"),
            "does not fit the pattern",
        ),
        (Phrase("hold it", "guard", "not callable", "s"), "build must be callable"),  # type: ignore[arg-type]
        (Phrase("hold it", "guard", lambda _a: None, ""), "summary must be a sentence"),
    ],
)
def test_invalid_declarations_name_the_plugin(declared: Phrase, says: str) -> None:
    with pytest.raises(PluginError) as error:
        PluginSet.from_plugins({"vendor.bad": _guards(declared)})
    assert error.value.plugin == "vendor.bad"
    assert says in str(error.value)


def test_wrong_return_types_hook_errors_and_typos_name_the_plugin() -> None:
    class NotAList:
        @hookimpl
        def paysplit_phrases(self) -> Any:
            return {"pattern": "x"}

    class Raises:
        @hookimpl
        def paysplit_vocabulary(self) -> Vocabulary:
            raise RuntimeError("database down")

    class BadVocabulary:
        @hookimpl
        def paysplit_vocabulary(self) -> Any:
            return Vocabulary(statuses={"on hold": "spaces are not words"})

    class BadMode:
        @hookimpl
        def paysplit_modes(self) -> list[Mode]:
            return [Mode("odd", "oldest first where (", "never parses")]

    class Typo:
        @hookimpl
        def paysplit_phrase(self) -> list[Phrase]:
            return []

    cases = [
        (NotAList(), "must return a list of Phrase"),
        (Raises(), "paysplit_vocabulary raised RuntimeError: database down"),
        (BadVocabulary(), "vocabulary statuses must map words"),
        (BadMode(), "mode 'odd': its expansion"),
        (Typo(), "implements a hook paysplit does not have"),
    ]
    for plugin, says in cases:
        with pytest.raises(PluginError) as error:
            PluginSet.from_plugins({"vendor.bad": plugin})
        assert error.value.plugin == "vendor.bad"
        assert says in str(error.value)


def test_a_plugin_may_not_declare_the_same_fixed_words_twice() -> None:
    plugin = _guards(
        phrase("hold {x:word}", "guard", FakeGuard), phrase("hold {y:number}", "guard", FakeGuard)
    )
    with pytest.raises(PluginError, match='two phrases starting "hold"'):
        PluginSet.from_plugins({"vendor.twice": plugin})


def test_a_disabled_plugin_s_declarations_are_read_without_registering_it() -> None:
    plugins = stock_set(disabled=("test.cross_doctor", "test.modes"))
    assert plugins.manager.get_plugin("test.cross_doctor") is None
    entry = plugins.disabled_phrase("clause", _words("no cross-doctor"))
    assert entry is not None and entry.plugin == "test.cross_doctor"
    assert plugins.disabled_phrase("clause", _words("no cross-doctor at all")) is entry
    assert plugins.disabled_phrase("clause", _words("include debits")) is None
    assert plugins.disabled_mode("payment plans") is not None
    assert "payment plans" not in plugins.modes


def _words(text: str) -> list[Any]:
    from paysplit.parser import parse_clauses
    from paysplit.syntax import PhraseClause

    clause = parse_clauses(text)[0]
    assert isinstance(clause, PhraseClause)
    return list(clause.words.items)
