"""Compiled rules: what the compiler produces and the allocation core runs.

This is the one meeting point of the rule language and the allocation core:
the compiler (:mod:`paysplit.compiler`) turns rule files into a
:class:`RuleSet`; the core (:mod:`paysplit.allocation`) runs its rules and
never sees a parse tree. Every clause keeps where it was written, so a plan's
trace can say which clause decided (``rules/smile.rules:8:17``), and which
plugin supplied it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from paysplit.phrases import Vocabulary
from paysplit.policy import (
    Clause,
    Distribution,
    Filter,
    Guard,
    LeftoverHandler,
    Order,
    Preference,
    Scope,
    Source,
    Targets,
)

Trigger = Literal["payment", "charge added", "demand"]
CORE = "paysplit (core)"
"""The ``plugin`` of a clause that is core syntax rather than a plugin phrase."""

ClauseT = TypeVar("ClauseT", bound=Clause, covariant=True)


@dataclass(frozen=True, order=True)
class Location:
    """Where something is written in a rule file (line and column start at 1)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class CompiledClause(Generic[ClauseT]):
    """One clause as written, with the implementation it compiled to."""

    impl: ClauseT
    text: str
    """The clause as the author wrote it, e.g. ``skip codes (D9986, D9987)``."""
    location: Location
    plugin: str
    """The plugin that supplied the phrase, or :data:`CORE`."""
    kind: str


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to run: every clause resolved, every expression compiled."""

    name: str
    title: str
    location: Location
    trigger: Trigger
    source: CompiledClause[Source]
    targets: CompiledClause[Targets] | None
    """None means the core targets: charges, or installments when ``to_installments``."""
    to_installments: bool
    orders: tuple[CompiledClause[Order], ...]
    """Applied in order, then ledger position; empty means ``oldest first``."""
    filters: tuple[CompiledClause[Filter], ...]
    scopes: tuple[CompiledClause[Scope], ...]
    preferences: tuple[CompiledClause[Preference], ...]
    guards: tuple[CompiledClause[Guard], ...]
    """The rule's own guards; the rule set's settings guards apply as well."""
    distribution: CompiledClause[Distribution] | None
    leftover: CompiledClause[LeftoverHandler] | None
    """None means ``leftover keep``."""
    clauses: tuple[CompiledClause[Clause], ...] = ()
    """Every clause of the rule in written order (modes expanded), for coverage."""

    @property
    def pooled(self) -> bool:
        return self.source.impl.pooled


@dataclass(frozen=True)
class Settings:
    default_unearned_type: str | None = None
    default_rule: str | None = None
    guards: tuple[CompiledClause[Guard], ...] = ()
    """Guards from the settings block, and plugin settings' defaults, in force everywhere."""


@dataclass(frozen=True)
class RuleSet:
    """The rules of one or more rule files loaded together."""

    files: tuple[str, ...]
    rules: Mapping[str, CompiledRule]
    settings: Settings
    vocabulary: Vocabulary
    """Every loaded plugin's vocabulary, merged."""
    digest: str
    """sha256 over the rule files' text and the loaded plugins' versions."""
    plugins: Mapping[str, str] = field(default_factory=dict)
    """Loaded plugin name -> version."""

    def rule(self, name: str) -> CompiledRule | None:
        return self.rules.get(name)

    def unearned_type_of(self, declared: str | None) -> str:
        """A payment's effective unearned type (ledger default: settings, else prepayment)."""
        return declared or self.settings.default_unearned_type or "prepayment"

    def rules_on(self, trigger: Trigger) -> list[CompiledRule]:
        return [r for r in self.rules.values() if r.trigger == trigger]
