"""Test plugins for the rule-language tests: the stock phrases, declared in-process.

They declare the same patterns as paysplit's built-in plugins (dsl.md "Stock
clauses") with trivial implementations, so the language can be tested on its
own, and they count how often ``build`` is called.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from paysplit import hookimpl
from paysplit.phrases import Arguments, Mode, Phrase, Vocabulary
from paysplit.plugin_manager import PluginSet
from paysplit.policy import Guard, LeftoverHandler, Preference, Scope, Source

BUILDS: Counter[str] = Counter()
"""pattern -> how many times its build was called."""


@dataclass(frozen=True)
class Built:
    """What a test phrase built: which pattern, with which arguments."""

    pattern: str
    arguments: tuple[tuple[str, Any], ...]


class FakeScope(Scope, Built):
    pass


class FakePreference(Preference, Built):
    pass


class FakeGuard(Guard, Built):
    pass


class FakeLeftover(LeftoverHandler, Built):
    pass


class FakeSource(Source, Built):
    pass


def _builder(pattern: str, cls: type[Built]) -> Any:
    def build(arguments: Arguments) -> Any:
        BUILDS[pattern] += 1
        return cls(pattern, tuple(sorted(arguments.items())))

    return build


def phrase(pattern: str, kind: Any, cls: type[Built], **extra: Any) -> Phrase:
    return Phrase(
        pattern=pattern,
        kind=kind,
        build=_builder(pattern, cls),
        summary=f"test phrase {pattern}",
        **extra,
    )


class Vocabularies:
    @hookimpl
    def paysplit_vocabulary(self) -> Vocabulary:
        return Vocabulary(
            statuses={
                s: s
                for s in (
                    "due_patient",
                    "pending_patient",
                    "due_insurance",
                    "pending_payer",
                    "collection",
                    "collection_agency",
                )
            },
            kinds={"procedure": "", "adjustment": ""},
            unearned_types={"prepayment": "", "copay": "", "overpayment": ""},
        )


class Debits:
    @hookimpl
    def paysplit_vocabulary(self) -> Vocabulary:
        return Vocabulary(kinds={"debit": "a fee"}, opt_in_kinds=frozenset({"debit"}))

    @hookimpl
    def paysplit_phrases(self) -> list[Phrase]:
        return [phrase("include debits", "scope", FakeScope)]


class Scopes:
    @hookimpl
    def paysplit_phrases(self) -> list[Phrase]:
        return [
            phrase("include dependents", "scope", FakeScope),
            phrase("include account", "scope", FakeScope),
            phrase("match provider", "preference", FakePreference),
            phrase("match office", "preference", FakePreference),
            phrase("match patient", "preference", FakePreference),
            phrase("appointment credit", "source", FakeSource),
        ]


class CrossDoctor:
    @hookimpl
    def paysplit_guards(self) -> list[Phrase]:
        return [
            phrase(
                "no cross-doctor",
                "guard",
                FakeGuard,
                where="both",
                makes_redundant=("match provider",),
            )
        ]


class Guards:
    @hookimpl
    def paysplit_guards(self) -> list[Phrase]:
        return [
            phrase("whole charges only", "guard", FakeGuard),
            phrase("only when payment covers balance", "guard", FakeGuard),
            phrase("block on unattached negative adjustments", "guard", FakeGuard, where="both"),
            phrase(
                "negative unallocated {mode:block|warn|allow}",
                "guard",
                FakeGuard,
                where="settings",
                default="negative unallocated block",
            ),
            phrase(
                "overpay charge {mode:block|warn|allow}",
                "guard",
                FakeGuard,
                where="settings",
                default="overpay charge block",
            ),
        ]


class Leftovers:
    @hookimpl
    def paysplit_leftover_handlers(self) -> list[Phrase]:
        return [
            phrase(
                "credit due {due_to:patient|insurance} [memo {memo:string}] "
                "[provider {provider:provider|same}] [office {office:office|same}]",
                "leftover",
                FakeLeftover,
            )
        ]


class Modes:
    @hookimpl
    def paysplit_modes(self) -> list[Mode]:
        return [
            Mode(
                "due patient",
                "oldest first where status in (due_patient, pending_patient)",
                "due patient",
            ),
            Mode(
                "due insurance",
                "oldest first where status in (due_insurance, pending_payer)",
                "due insurance",
            ),
            Mode(
                "collection",
                "oldest first where status in (collection, collection_agency)",
                "collection",
            ),
            Mode("payment plans", "to installments, oldest first", "payment plans"),
        ]


def stock(**more: object) -> dict[str, object]:
    """The test stock plugins by name (plus any given), in registration order."""
    plugins: dict[str, object] = {
        "test.vocabulary": Vocabularies(),
        "test.include_debits": Debits(),
        "test.scopes": Scopes(),
        "test.cross_doctor": CrossDoctor(),
        "test.guards": Guards(),
        "test.credit_due_to": Leftovers(),
        "test.modes": Modes(),
    }
    plugins.update(more)
    return plugins


def stock_set(disabled: tuple[str, ...] = (), **more: object) -> PluginSet:
    return PluginSet.from_plugins(stock(**more), disabled=disabled)
