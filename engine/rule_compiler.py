"""Compiling one rule: its clauses, in written order, into a :class:`~paysplit.rules.CompiledRule`.

Core clauses (``on``, ``from payment|unallocated|unearned``, ``to charges|
installments``, the orders, ``where``, ``leftover keep``) compile to
:mod:`paysplit.core_clauses`; every other clause resolves against the
plugins' phrases; ``mode NAME`` compiles its expansion at the mode clause's
location (core clauses of an expansion are credited to the mode's plugin).
A rule has at most one trigger, source, target, distribution and leftover:
a second, different one is an error naming both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from paysplit.checks import ClauseNote, RuleNotes
from paysplit.core_clauses import (
    FieldOrder,
    LargestFirst,
    NewestFirst,
    OldestFirst,
    PaymentSource,
    PoolSource,
    SmallestFirst,
)
from paysplit.expressions import Condition, Getter, compile_where, order_field
from paysplit.formatter import render_clause, render_order
from paysplit.patterns import closest
from paysplit.plugin_manager import PhraseEntry
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
    Target,
    Targets,
)
from paysplit.resolver import Resolver, Site, with_left_out
from paysplit.rules import CORE, CompiledClause, CompiledRule, Location, Trigger
from paysplit.syntax import Clause as Node
from paysplit.syntax import KeywordClause, OrderClause, PhraseClause, RuleDecl, Span, WhereClause

MAX_CLAUSES = 200
"""The most clauses one rule may have."""
MAX_MODE_DEPTH = 4
"""How deeply modes may expand into other modes."""
TRIGGERS: dict[str, Trigger] = {
    "payment": "payment",
    "charge added": "charge added",
    "demand": "demand",
}
NAMED_ORDERS: dict[str, type[Order]] = {
    "oldest": OldestFirst,
    "newest": NewestFirst,
    "largest": LargestFirst,
    "smallest": SmallestFirst,
}
_CORE_SHAPES = {
    "from": "from payment, from unallocated, from unearned or from unearned type NAME",
    "to": "to charges or to installments",
    "leftover": "leftover keep, or a leftover phrase a plugin supplies (paysplit plugins)",
}


@dataclass(frozen=True)
class _Context:
    """Where a clause is being compiled: the file, or a mode's expansion."""

    site: Site
    plugin: str = CORE
    """Credited with core clauses: CORE, or the plugin of the mode being expanded."""
    mode: str | None = None
    depth: int = 0


@dataclass
class _Parts:
    """A rule's compiled clauses, collected while its clauses are compiled."""

    trigger: Trigger = "payment"
    source: CompiledClause[Source] | None = None
    targets: CompiledClause[Targets] | None = None
    to_installments: bool = False
    orders: list[CompiledClause[Order]] = field(default_factory=list)
    filters: list[CompiledClause[Filter]] = field(default_factory=list)
    scopes: list[CompiledClause[Scope]] = field(default_factory=list)
    preferences: list[CompiledClause[Preference]] = field(default_factory=list)
    guards: list[CompiledClause[Guard]] = field(default_factory=list)
    distribution: CompiledClause[Distribution] | None = None
    leftover: CompiledClause[LeftoverHandler] | None = None
    clauses: list[CompiledClause[Clause]] = field(default_factory=list)
    notes: list[ClauseNote] = field(default_factory=list)
    conditions: list[tuple[Condition, Location]] = field(default_factory=list)
    singles: dict[str, tuple[str, Location]] = field(default_factory=dict)
    """Once-only slot -> (the clause that filled it, where)."""


class RuleCompiler:
    """Compiles the rules of one file against a plugin set."""

    def __init__(self, resolver: Resolver, site: Site, default_unearned_type: str | None) -> None:
        self.resolver = resolver
        self.plugins = resolver.plugins
        self.site = site
        self.default_unearned_type = default_unearned_type

    def compile(self, decl: RuleDecl) -> tuple[CompiledRule | None, RuleNotes]:
        """The compiled rule (None when it has errors, which go to the site) and its notes."""
        errors_before = len(self.site.errors)
        parts = _Parts()
        location = Location(self.site.file, decl.span.line, decl.span.column)
        if len(decl.clauses) > MAX_CLAUSES:
            self.site.error(
                f"a rule may have at most {MAX_CLAUSES} clauses", decl.clauses[MAX_CLAUSES].span
            )
        context = _Context(self.site)
        for clause in decl.clauses[:MAX_CLAUSES]:
            self.clause(clause, parts, context)
        notes = RuleNotes(decl.name, location, tuple(parts.notes), tuple(parts.conditions))
        if len(self.site.errors) > errors_before:
            return None, notes
        source = parts.source or CompiledClause(
            PaymentSource(), "from payment", location, CORE, "source"
        )
        rule = CompiledRule(
            name=decl.name,
            title=decl.title or "",
            location=location,
            trigger=parts.trigger,
            source=source,
            targets=parts.targets,
            to_installments=parts.to_installments,
            orders=tuple(parts.orders),
            filters=tuple(parts.filters),
            scopes=tuple(parts.scopes),
            preferences=tuple(parts.preferences),
            guards=tuple(parts.guards),
            distribution=parts.distribution,
            leftover=parts.leftover,
            clauses=tuple(parts.clauses),
        )
        return rule, notes

    # --- dispatch -------------------------------------------------------------------
    def clause(self, node: Node, parts: _Parts, context: _Context) -> None:
        if isinstance(node, OrderClause):
            self.order(node, parts, context)
        elif isinstance(node, WhereClause):
            self.where(node, parts, context)
        elif isinstance(node, PhraseClause):
            self.phrase(node, parts, context)
        else:
            handlers: dict[str, Callable[[KeywordClause, _Parts, _Context], None]] = {
                "on": self.on,
                "from": self.from_,
                "to": self.to,
                "leftover": self.leftover,
                "mode": self.mode,
            }
            handlers[node.keyword](node, parts, context)

    def add(
        self,
        parts: _Parts,
        context: _Context,
        impl: Clause,
        text: str,
        span: Span,
        kind: str,
        key: str | None,
        entry: PhraseEntry | None = None,
        noted_as: str | None = None,
    ) -> CompiledClause[Any]:
        """Record a compiled clause (in written order) and what the checks need of it
        (``key`` None: nothing, it is part of a clause already noted)."""
        location = context.site.location(span)
        plugin = entry.plugin if entry is not None else context.plugin
        compiled: CompiledClause[Any] = CompiledClause(impl, text, location, plugin, kind)
        parts.clauses.append(compiled)
        if key is None:
            return compiled
        parts.notes.append(
            ClauseNote(
                key=key,
                text=noted_as or text,
                head=entry.pattern.head if entry is not None else None,
                makes_redundant=tuple(entry.phrase.makes_redundant) if entry is not None else (),
                location=location,
                mode=context.mode,
            )
        )
        return compiled

    def single(self, parts: _Parts, context: _Context, slot: str, key: str, span: Span) -> bool:
        """Claim a once-only slot; False (after reporting it) when another clause has it."""
        taken = parts.singles.get(slot)
        if taken is None:
            parts.singles[slot] = (key, context.site.location(span))
            return True
        if taken[0] == key:
            return False  # the same clause twice: the checks warn about it
        context.site.error(
            f'a rule has one {slot}: "{key}" here, and "{taken[0]}" at line {taken[1].line}',
            span,
            "keep one of them",
        )
        return False

    # --- core clauses ---------------------------------------------------------------
    def on(self, node: KeywordClause, parts: _Parts, context: _Context) -> None:
        spoken = " ".join(w.text for w in node.words.items)
        plain = all(w.kind == "word" for w in node.words.items)
        trigger = TRIGGERS.get(spoken) if plain else None
        if trigger is None:
            close = closest(f"on {spoken}", [f"on {t}" for t in TRIGGERS])
            hint = (
                f'did you mean "{close}"?'
                if close
                else "a rule runs on payment, on charge added or on demand"
            )
            context.site.error(f'unknown trigger "on {node.words.text}"', node.words.span, hint)
            return
        key = render_clause(node)
        if self.single(parts, context, "trigger", key, node.span):
            parts.trigger = trigger
        self.add(parts, context, Clause(), node.text, node.span, "trigger", key)

    def from_(self, node: KeywordClause, parts: _Parts, context: _Context) -> None:
        words = node.words
        spoken = [w.text for w in words.items] if all(w.kind == "word" for w in words.items) else []
        impl: Source
        entry: PhraseEntry | None = None
        if spoken in (["payment"], ["unallocated"], ["unearned"]):
            impl = PaymentSource() if spoken == ["payment"] else PoolSource(None)
        elif len(spoken) == 3 and spoken[:2] == ["unearned", "type"]:
            problem = self.resolver.check_word("unearned_types", spoken[2])
            if problem is not None:
                context.site.error(problem[0], words.items[2].span, problem[1])
                return
            impl = PoolSource(spoken[2])
        elif words.items[0].kind == "word" and words.items[0].text in (
            "payment",
            "unallocated",
            "unearned",
        ):
            self.core_shape(node, context)
            return
        else:
            resolved = self.resolver.resolve("source", words, context.site)
            if resolved is None:
                return
            if not isinstance(resolved.impl, Source):  # pragma: no cover - resolver checks
                return
            impl, entry = resolved.impl, resolved.entry
        key = render_clause(node)
        claimed = self.single(parts, context, "source", key, node.span)
        added = self.add(parts, context, impl, node.text, node.span, "source", key, entry)
        if claimed:
            parts.source = added

    def to(self, node: KeywordClause, parts: _Parts, context: _Context) -> None:
        words = node.words
        first = words.items[0]
        key = render_clause(node)
        if first.kind == "word" and first.text in ("charges", "installments"):
            if len(words.items) > 1:
                self.core_shape(node, context)
                return
            if self.single(parts, context, "target", key, node.span):
                parts.to_installments = first.text == "installments"
            self.add(parts, context, Targets(), node.text, node.span, "target", key)
            return
        resolved = self.resolver.resolve("target", words, context.site)
        if resolved is None:
            return
        claimed = self.single(parts, context, "target", key, node.span)
        added = self.add(
            parts, context, resolved.impl, node.text, node.span, "target", key, resolved.entry
        )
        if claimed:
            parts.targets = added

    def leftover(self, node: KeywordClause, parts: _Parts, context: _Context) -> None:
        words = node.words
        first = words.items[0]
        key = render_clause(node)
        if first.kind == "word" and first.text == "keep":
            if len(words.items) > 1:
                self.core_shape(node, context)
                return
            self.single(parts, context, "leftover", key, node.span)
            self.add(parts, context, LeftoverHandler(), node.text, node.span, "leftover", key)
            return
        resolved = self.resolver.resolve("leftover", words, context.site)
        if resolved is None:
            return
        claimed = self.single(parts, context, "leftover", key, node.span)
        added = self.add(
            parts, context, resolved.impl, node.text, node.span, "leftover", key, resolved.entry
        )
        if claimed:
            parts.leftover = added

    def core_shape(self, node: KeywordClause, context: _Context) -> None:
        context.site.error(
            f'unexpected words in "{node.keyword} {node.words.text}"',
            node.words.span,
            f"write {_CORE_SHAPES[node.keyword]}",
        )

    def order(self, node: OrderClause, parts: _Parts, context: _Context) -> None:
        key = render_order(node)
        if node.name is not None:
            impl: Order = NAMED_ORDERS[node.name]()
            parts.orders.append(self.add(parts, context, impl, node.text, node.span, "order", key))
        for index, order_key in enumerate(node.keys):
            found, problem = order_field(order_key.field)
            if found is None:
                if problem is not None:
                    context.site.error(problem.message, problem.span, problem.hint)
                continue
            direction = f" {order_key.direction}" if order_key.direction else ""
            written = order_key.field.text + direction
            text = f"order by {written}" if index == 0 else f"then {written}"
            span = node.span if index == 0 else order_key.span
            impl = FieldOrder(
                found.name, _target_value(found.get), descending=order_key.direction == "desc"
            )
            noted = key if index == 0 else None
            parts.orders.append(
                self.add(parts, context, impl, text, span, "order", noted, None, node.text)
            )
        if node.where is not None:
            self.where(node.where, parts, context)

    def where(self, node: WhereClause, parts: _Parts, context: _Context) -> None:
        compiled, problems = compile_where(
            node.expr, self.resolver.check_word, self.default_unearned_type
        )
        for problem in problems:
            context.site.error(problem.message, problem.span, problem.hint)
        if compiled is None:
            return
        added = self.add(
            parts, context, compiled, node.text, node.span, "filter", render_clause(node)
        )
        parts.filters.append(added)
        parts.conditions.append((compiled.condition, added.location))

    # --- plugin phrases and modes -------------------------------------------------------
    def phrase(self, node: PhraseClause, parts: _Parts, context: _Context) -> None:
        def in_a_rule(entry: PhraseEntry) -> str | None:
            if entry.phrase.where == "settings":
                return (
                    f'"{node.text}" is a setting: write it in the settings block, '
                    "where it applies to every rule"
                )
            return None

        modes = [(f"mode {name}", m.plugin) for name, m in self.plugins.modes.items()]
        resolved = self.resolver.resolve("clause", node.words, context.site, in_a_rule, modes)
        if resolved is None:
            return
        entry, kind, key = resolved.entry, resolved.entry.kind, render_clause(node)
        if kind == "distribution" and not self.single(
            parts, context, "distribution", key, node.span
        ):
            return
        added = self.add(parts, context, resolved.impl, node.text, node.span, kind, key, entry)
        if kind == "scope":
            parts.scopes.append(added)
        elif kind == "filter":
            parts.filters.append(added)
        elif kind == "order":
            parts.orders.append(added)
        elif kind == "preference":
            parts.preferences.append(added)
        elif kind == "guard":
            parts.guards.append(added)
        elif kind == "distribution":
            parts.distribution = added

    def mode(self, node: KeywordClause, parts: _Parts, context: _Context) -> None:
        words = node.words
        name = " ".join(w.text for w in words.items)
        plain = all(w.kind == "word" for w in words.items)
        entry = self.plugins.modes.get(name) if plain else None
        site = context.site
        if entry is None:
            disabled = self.plugins.disabled_mode(name)
            if disabled is not None:
                site.error(
                    f'mode "{name}" comes from plugin {disabled.plugin}, which is disabled',
                    words.span,
                    "enable the plugin, or remove the clause",
                )
                return
            close = closest(name, list(self.plugins.modes))
            if close is not None:
                hint = (
                    f'did you mean "mode {close}"? (from plugin {self.plugins.modes[close].plugin})'
                )
            else:
                hint = "known modes: " + (", ".join(self.plugins.modes) or "(none loaded)")
            site.error(f'unknown mode "{name}"', words.span, with_left_out(self.plugins, hint))
            return
        if context.depth >= MAX_MODE_DEPTH:
            site.error(
                f'mode "{name}" expands into modes more than {MAX_MODE_DEPTH} deep', node.span
            )
            return
        inner = _Context(
            site.inside(name, node.span, entry.plugin),
            entry.plugin,
            context.mode or name,
            context.depth + 1,
        )
        for clause in entry.clauses:
            self.clause(clause, parts, inner)


def _target_value(get: Getter) -> Callable[[Target], Any]:
    return lambda target: get(target, None)
