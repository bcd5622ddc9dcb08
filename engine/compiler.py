"""The compiler: rule files -> :class:`paysplit.rules.RuleSet`, resolved against a plugin set.

Public API (other parts of paysplit depend on it):

- :func:`load_rules` loads several files as one rule set, or raises
  :class:`~paysplit.errors.RuleFileError` with every diagnostic;
- :func:`check_files` checks each file on its own: every error and warning;
- :func:`compile_source` compiles one text.

A file is read safely (:mod:`paysplit.source`), parsed with recovery
(:mod:`paysplit.parser`), its settings compiled first (a rule's ``where``
needs the default unearned type), then its rules (:mod:`paysplit.rule_compiler`),
then the static checks run (:mod:`paysplit.checks`). A plugin's failure is a
:class:`~paysplit.errors.PluginError` and propagates.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from paysplit import source
from paysplit.checks import ClauseNote, RuleNotes, warnings_for
from paysplit.errors import Diagnostic, RuleFileError
from paysplit.formatter import render_clause
from paysplit.parser import MAX_ERRORS, parse_clauses, parse_file
from paysplit.patterns import closest, leading_match, match
from paysplit.plugin_manager import PhraseEntry, PluginSet
from paysplit.policy import Guard
from paysplit.resolver import Resolver, Site, build, closest_form, with_left_out
from paysplit.rule_compiler import RuleCompiler
from paysplit.rules import CompiledClause, CompiledRule, Location, RuleSet, Settings
from paysplit.syntax import PhraseClause, RuleDecl, SettingsDecl, Span

DEFAULTS = "<default>"
"""The file named by a settings default's location (it is written nowhere)."""
RULE_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_SETTING_FORMS = ("default unearned type", "default rule")


@dataclass
class CheckResult:
    """Everything ``paysplit check`` found, over all files."""

    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class _Value:
    """A setting's value and where it was given."""

    value: str
    location: Location
    span: Span


@dataclass
class _FileSettings:
    values: dict[str, _Value] = field(default_factory=dict)
    """``default unearned type`` / ``default rule`` -> value."""
    guards: dict[tuple[str, ...], tuple[CompiledClause[Guard], str]] = field(default_factory=dict)
    """A settings phrase's fixed words -> (the guard, its canonical text)."""
    notes: list[ClauseNote] = field(default_factory=list)


@dataclass
class _Unit:
    """One file on its way to a rule set."""

    path: str
    text: str
    lines: list[str]
    site: Site
    decls: list[RuleDecl] = field(default_factory=list)
    settings_decl: SettingsDecl | None = None
    settings: _FileSettings = field(default_factory=_FileSettings)
    rules: list[CompiledRule] = field(default_factory=list)
    notes: list[RuleNotes] = field(default_factory=list)
    syntax_errors: bool = False


# --- public API ------------------------------------------------------------------
def compile_source(
    text: str, file: str, plugins: PluginSet
) -> tuple[RuleSet | None, list[Diagnostic]]:
    """Compile one rule file's text: the rule set (None on errors) and every diagnostic."""
    ruleset, errors, warnings = _compile([(file, text)], plugins)
    return ruleset, [*errors, *warnings]


def check_files(paths: Sequence[str | Path], plugins: PluginSet) -> CheckResult:
    """Check each file on its own against the plugins: every error and warning."""
    result = CheckResult()
    for path in paths:
        text, problem = read_rule_file(path)
        if problem is not None:
            result.errors.append(problem)
            continue
        assert text is not None
        _, errors, warnings = _compile([(str(path), text)], plugins)
        result.errors.extend(errors)
        result.warnings.extend(warnings)
    return result


def load_rules(paths: Sequence[str | Path], plugins: PluginSet) -> RuleSet:
    """Load several rule files as one rule set, or raise RuleFileError with every error.

    No paths gives the rule set of the plugins' defaults alone (no rules; the
    settings every plugin puts in force when none are written), which is what
    a manual operation without ``--rules`` is checked against.
    """
    texts: list[tuple[str, str]] = []
    problems: list[Diagnostic] = []
    for path in paths:
        text, problem = read_rule_file(path)
        if problem is not None:
            problems.append(problem)
        elif text is not None:
            texts.append((str(path), text))
    if problems:
        raise RuleFileError(problems)
    ruleset, errors, _ = _compile(texts, plugins)
    if ruleset is None:
        raise RuleFileError(errors)
    return ruleset


def read_rule_file(path: str | Path) -> tuple[str | None, Diagnostic | None]:
    """A rule file's text, or the one diagnostic that says why it cannot be read."""
    name = str(path)
    try:
        data = source.read_bytes(path)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return None, Diagnostic(name, 1, 1, f"cannot read the file: {reason}")
    return source.decode(name, data)


# --- compiling a set of files ----------------------------------------------------------
def _compile(
    texts: Sequence[tuple[str, str]], plugins: PluginSet
) -> tuple[RuleSet | None, list[Diagnostic], list[Diagnostic]]:
    resolver = Resolver(plugins)
    units = [_parse(path, text) for path, text in texts]
    for unit in units:
        _compile_settings(unit, resolver)
    merged = _merge_settings(units)
    default_type = merged.values.get("default unearned type")
    for unit in units:
        compiler = RuleCompiler(resolver, unit.site, default_type.value if default_type else None)
        for decl in unit.decls:
            rule, notes = compiler.compile(decl)
            unit.notes.append(notes)
            if rule is not None:
                unit.rules.append(rule)
    rules = _unique_rules(units)
    if not any(unit.syntax_errors for unit in units):  # a dropped rule is not missing
        _check_default_rule(units, merged)
    rank = {unit.path: index for index, unit in enumerate(units)}

    def position(diagnostic: Diagnostic) -> tuple[int, int, int]:
        return (rank.get(diagnostic.file, len(rank)), diagnostic.line, diagnostic.column)

    errors = _capped(sorted((e for unit in units for e in unit.site.errors), key=position))
    warnings = _capped(sorted(_warnings(units), key=position))
    if errors:
        return None, errors, warnings
    guards = [guard for guard, _ in merged.guards.values()]
    guards += _defaults(resolver, merged)
    default_rule = merged.values.get("default rule")
    ruleset = RuleSet(
        files=tuple(unit.path for unit in units),
        rules=rules,
        settings=Settings(
            default_unearned_type=default_type.value if default_type else None,
            default_rule=default_rule.value if default_rule else None,
            guards=tuple(guards),
        ),
        vocabulary=plugins.vocabulary,
        digest=_digest([unit.text for unit in units], plugins),
        plugins=dict(plugins.versions),
    )
    return ruleset, errors, warnings


def _capped(diagnostics: Sequence[Diagnostic]) -> list[Diagnostic]:
    """At most :data:`~paysplit.parser.MAX_ERRORS` diagnostics per file (the first, in the
    order given, a file's together), then one that says how many more there are: a 64 KB
    file can hold thousands of the same mistake, and a reader fixes the first ones first."""
    kept: list[Diagnostic] = []
    for file, group in itertools.groupby(diagnostics, key=lambda d: d.file):
        found = list(group)
        kept += found[:MAX_ERRORS]
        more = found[MAX_ERRORS:]
        if more:
            first = more[0]
            noun = first.severity if len(more) == 1 else f"{first.severity}s"
            message = (
                f"... and {len(more)} more {noun} in this file (the first {MAX_ERRORS} are listed)"
            )
            kept.append(
                Diagnostic(
                    file, first.line, first.column, message, "fix these first", first.severity
                )
            )
    return kept


def _parse(path: str, text: str) -> _Unit:
    result = parse_file(path, text)
    lines = list(result.file.lines)
    unit = _Unit(path, text, lines, Site(path, lines))
    unit.site.errors.extend(result.errors)
    unit.syntax_errors = bool(result.errors)
    if not result.errors and not result.file.items:
        unit.site.errors.append(
            Diagnostic(
                path,
                1,
                1,
                "the file holds no rules or settings",
                "write a rule such as: rule pay_oldest: oldest first",
            )
        )
    for item in result.file.items:
        if isinstance(item, RuleDecl):
            unit.decls.append(item)
        elif unit.settings_decl is None:
            unit.settings_decl = item
        else:
            unit.site.error(
                "a file has one settings block; the first is at line "
                f"{unit.settings_decl.span.line}",
                item.span,
                "move these settings into it",
            )
    if len(unit.decls) > source.MAX_RULES:
        unit.site.error(
            f"a file may hold at most {source.MAX_RULES} rules", unit.decls[source.MAX_RULES].span
        )
        del unit.decls[source.MAX_RULES :]
    for decl in unit.decls:
        if not RULE_NAME.fullmatch(decl.name):
            unit.site.error(
                f'rule name "{decl.name}" must be lower-case letters, digits and "_"',
                decl.name_span,
                f"for example: rule {_snake(decl.name)}",
            )
    return unit


def _snake(name: str) -> str:
    out = "".join(c.lower() if c.isalnum() else "_" for c in name)
    return out if out and not out[0].isdigit() else f"r_{out}"


# --- settings ----------------------------------------------------------------------
def _compile_settings(unit: _Unit, resolver: Resolver) -> None:
    if unit.settings_decl is None:
        return
    site = unit.site
    for clause in unit.settings_decl.clauses:
        if not isinstance(clause, PhraseClause):
            site.error(
                f'"{clause.text}" cannot be a setting',
                clause.span,
                "settings are: default unearned type NAME, default rule NAME, "
                "and the guard phrases plugins allow in settings (see paysplit plugins)",
            )
            continue
        words = clause.words
        bare = words.bare()
        key = render_clause(clause)
        location = site.location(clause.span)
        if bare[:1] == ("default",):
            _core_setting(unit, clause, resolver)
            continue
        entry = resolver.find("clause", words.items)
        if entry is None or entry.phrase.where == "rule":
            if entry is not None:
                site.error(
                    f'"{clause.text}" is written in a rule, not in the settings', clause.span
                )
            else:
                forms: list[tuple[str, str | None]] = [(f, None) for f in _SETTING_FORMS]
                forms += [(e.pattern.head, e.plugin) for e in resolver.plugins.settings_phrases()]
                _unknown_setting(resolver, clause, site, forms)
            continue
        values = match(entry.pattern, words.items, resolver.check_word)
        if not isinstance(values, dict):
            resolver.report(values, words, site)
            continue
        impl = build(entry, values, clause.text)
        if not isinstance(impl, Guard):  # pragma: no cover - settings phrases are guards
            continue
        note = ClauseNote(
            key,
            clause.text,
            entry.pattern.head,
            tuple(entry.phrase.makes_redundant),
            location,
            in_settings=True,
        )
        unit.settings.notes.append(note)
        earlier = unit.settings.guards.get(entry.pattern.leading)
        if earlier is not None:
            if earlier[1] != key:
                site.error(
                    f'setting "{entry.pattern.head}" is given twice with different values: '
                    f'"{key}" here, "{earlier[1]}" at line {earlier[0].location.line}',
                    clause.span,
                    "keep one of them",
                )
            continue
        compiled: CompiledClause[Guard] = CompiledClause(
            impl, clause.text, location, entry.plugin, "guard"
        )
        unit.settings.guards[entry.pattern.leading] = (compiled, key)


def _unknown_setting(
    resolver: Resolver, clause: PhraseClause, site: Site, forms: Sequence[tuple[str, str | None]]
) -> None:
    disabled = resolver.plugins.disabled_phrase("clause", clause.words.items)
    if disabled is not None:
        site.error(
            f'setting "{clause.text}" comes from plugin {disabled.plugin}, which is disabled',
            clause.span,
            "enable the plugin, or remove the setting",
        )
        return
    best = closest_form([w.text for w in clause.words.items], forms)
    hint = ""
    if best is not None:
        origin = f" (from plugin {best[1]})" if best[1] else ""
        hint = f'did you mean "{best[0]}"?{origin}'
    site.error(
        f'unknown clause "{clause.text}"', clause.words.span, with_left_out(resolver.plugins, hint)
    )


def _core_setting(unit: _Unit, clause: PhraseClause, resolver: Resolver) -> None:
    site = unit.site
    items = clause.words.items
    spoken = [w.text for w in items]
    if spoken[:3] == ["default", "unearned", "type"]:
        name, size = "default unearned type", 3
    elif spoken[:2] == ["default", "rule"]:
        name, size = "default rule", 2
    else:
        _unknown_setting(resolver, clause, site, [(f, None) for f in _SETTING_FORMS])
        return
    if len(items) != size + 1 or items[size].kind != "word":
        at = items[size].span if len(items) > size else clause.span
        site.error(f'write "{name} NAME", with one name', at)
        return
    value, value_span = items[size].text, items[size].span
    if name == "default unearned type":
        problem = resolver.check_word("unearned_types", value)
        if problem is not None:
            site.error(problem[0], value_span, problem[1])
            return
    location = site.location(clause.span)
    earlier = unit.settings.values.get(name)
    key = render_clause(clause)
    unit.settings.notes.append(ClauseNote(key, clause.text, None, (), location, in_settings=True))
    if earlier is not None:
        if earlier.value != value:
            site.error(
                f'setting "{name}" is given twice with different values: {value} here, '
                f"{earlier.value} at line {earlier.location.line}",
                value_span,
                "keep one of them",
            )
        return
    unit.settings.values[name] = _Value(value, location, value_span)


def _merge_settings(units: list[_Unit]) -> _FileSettings:
    merged = _FileSettings()
    for unit in units:
        for name, value in unit.settings.values.items():
            earlier = merged.values.get(name)
            if earlier is None:
                merged.values[name] = value
            elif earlier.value != value.value:
                unit.site.error(
                    f'setting "{name}" is {value.value} here but {earlier.value} in '
                    f"{earlier.location}",
                    value.span,
                    "give each setting one value across the rule files",
                )
        for leading, (guard, key) in unit.settings.guards.items():
            first = merged.guards.get(leading)
            if first is None:
                merged.guards[leading] = (guard, key)
            elif first[1] != key:
                span = Span(
                    guard.location.line,
                    guard.location.column,
                    guard.location.line,
                    guard.location.column + len(guard.text),
                )
                unit.site.error(
                    f'setting "{key}" differs from "{first[1]}" in {first[0].location}',
                    span,
                    "give each setting one value across the rule files",
                )
    return merged


def _defaults(resolver: Resolver, merged: _FileSettings) -> list[CompiledClause[Guard]]:
    """Settings phrases with a default that no file names: their default is in force."""
    found: list[CompiledClause[Guard]] = []
    for entry in resolver.plugins.settings_phrases():
        default = entry.phrase.default
        if default is None or entry.pattern.leading in merged.guards:
            continue
        guard = _default_guard(entry, default, resolver)
        if guard is not None:
            found.append(guard)
    return found


def _default_guard(
    entry: PhraseEntry, default: str, resolver: Resolver
) -> CompiledClause[Guard] | None:
    clause = parse_clauses(default)[0]
    if not isinstance(clause, PhraseClause) or not leading_match(entry.pattern, clause.words.items):
        return None  # pragma: no cover - checked when the plugin was loaded
    values = match(entry.pattern, clause.words.items, resolver.check_word)
    if not isinstance(values, dict):
        return None  # pragma: no cover - checked when the plugin was loaded
    impl = build(entry, values, default)
    if not isinstance(impl, Guard):  # pragma: no cover - settings phrases are guards
        return None
    return CompiledClause(impl, default, Location(DEFAULTS, 0, 0), entry.plugin, "guard")


# --- rules across files --------------------------------------------------------------
def _unique_rules(units: list[_Unit]) -> dict[str, CompiledRule]:
    rules: dict[str, CompiledRule] = {}
    where: dict[str, Location] = {}
    for unit in units:
        for decl in unit.decls:
            location = Location(unit.path, decl.span.line, decl.span.column)
            first = where.get(decl.name)
            if first is not None:
                unit.site.error(
                    f'rule "{decl.name}" is defined twice: here and at {first}',
                    decl.name_span,
                    "rename one of them",
                )
                continue
            where[decl.name] = location
        for rule in unit.rules:
            if where.get(rule.name) == rule.location:
                rules[rule.name] = rule
    return rules


def _check_default_rule(units: list[_Unit], merged: _FileSettings) -> None:
    value = merged.values.get("default rule")
    if value is None:
        return
    declared = {d.name for unit in units for d in unit.decls}
    if value.value in declared:
        return
    unit = next(u for u in units if u.path == value.location.file)
    close = closest(value.value, sorted(declared))
    hint = (
        f"did you mean {close}?"
        if close
        else ("rules: " + ", ".join(sorted(declared)) if declared else "no rule is defined")
    )
    unit.site.error(
        f'default rule "{value.value}" is not a rule of this rule set', value.span, hint
    )


def _warnings(units: list[_Unit]) -> list[Diagnostic]:
    lines = {unit.path: unit.lines for unit in units}

    def line_of(location: Location) -> str:
        found = lines.get(location.file, [])
        return found[location.line - 1] if 0 < location.line <= len(found) else ""

    settings = [note for unit in units for note in unit.settings.notes]
    rules = [notes for unit in units for notes in unit.notes]
    return warnings_for(rules, settings, line_of)


def _digest(texts: Sequence[str], plugins: PluginSet) -> str:
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    for name, version in sorted(plugins.versions.items()):
        digest.update(f"\x00{name}={version}".encode())
    return digest.hexdigest()
