"""Finding, loading and checking plugins; what they declare, merged into a :class:`PluginSet`.

Plugins are found through the ``paysplit`` entry-point group. paysplit's own
policies (distribution ``paysplit``) are registered first and third-party
plugins after them, each group sorted by name, so a vendor's phrase with the
same fixed words overrides a built-in one (the override is recorded and
shown by ``paysplit plugins``). Every declaration hook is called once per
load and what it returns is checked here; a plugin that fails to import,
raises, or declares something invalid is a :class:`~paysplit.errors.PluginError`
naming it.

A disabled plugin is not registered, but its declarations are still read
(without registering it) so that a rule using one of its phrases can say
which plugin to enable. A plugin left off the ``PAYSPLIT_PLUGINS`` allow-list
is never imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

import pluggy

from paysplit import hookspecs
from paysplit.errors import PluginError, UsageError
from paysplit.parser import SyntaxProblem, parse_clauses
from paysplit.patterns import WORD_RE, Pattern, PatternError, leading_match, match, parse_pattern
from paysplit.phrases import ClauseKind, LedgerReader, Mode, Phrase, Vocabulary
from paysplit.policy import BASE_FOR_KIND
from paysplit.syntax import Clause, PhraseClause

GROUP = "paysplit"
"""The entry-point group plugins are published under."""
BUILTIN_DISTRIBUTION = "paysplit"

Namespace = Literal["clause", "source", "target", "leftover"]
"""Where a phrase is written: as a clause, or after ``from``, ``to`` or ``leftover``."""
VocabularyCategory = Literal["statuses", "kinds", "unearned_types"]
Status = Literal["enabled", "disabled", "not allowed"]

NAMESPACE_OF_KIND: dict[str, Namespace] = {
    "source": "source",
    "target": "target",
    "leftover": "leftover",
}
HOOK_KINDS: dict[str, frozenset[str]] = {
    "paysplit_phrases": frozenset(BASE_FOR_KIND) - {"guard", "leftover"},
    "paysplit_guards": frozenset({"guard"}),
    "paysplit_leftover_handlers": frozenset({"leftover"}),
}
CORE_WORDS: dict[Namespace, frozenset[str]] = {
    "clause": frozenset(
        {"on", "from", "to", "oldest", "newest", "largest", "smallest", "order", "where"}
        | {"leftover", "mode", "rule", "settings"}
    ),
    "source": frozenset({"payment", "unallocated", "unearned"}),
    "target": frozenset({"charges", "installments"}),
    "leftover": frozenset({"keep"}),
}
"""Words a plugin phrase may not start with: core syntax owns them."""
CORE_SETTINGS = (("default", "unearned", "type"), ("default", "rule"))


def namespace_of(kind: str) -> Namespace:
    return NAMESPACE_OF_KIND.get(kind, "clause")


@dataclass(frozen=True)
class PhraseEntry:
    """A declared phrase, its parsed pattern and the plugin it came from."""

    phrase: Phrase
    pattern: Pattern
    plugin: str
    version: str

    @property
    def kind(self) -> ClauseKind:
        return self.phrase.kind

    @property
    def namespace(self) -> Namespace:
        return namespace_of(self.phrase.kind)

    @property
    def key(self) -> tuple[Namespace, tuple[str, ...]]:
        return (self.namespace, self.pattern.leading)


@dataclass(frozen=True)
class ModeEntry:
    mode: Mode
    plugin: str
    version: str
    clauses: tuple[Clause, ...]
    """The expansion, parsed once when the plugin is loaded."""


@dataclass(frozen=True)
class ReaderEntry:
    reader: LedgerReader
    plugin: str
    version: str


@dataclass(frozen=True)
class Override:
    """A phrase, mode or ledger reader that a later plugin replaced."""

    what: Literal["phrase", "mode", "ledger reader"]
    name: str
    plugin: str
    """The plugin whose declaration is in force."""
    replaced: str
    """The plugin whose declaration it replaced."""


@dataclass(frozen=True)
class PluginInfo:
    """One installed plugin and what it declares (for ``paysplit plugins``)."""

    name: str
    version: str
    distribution: str
    builtin: bool
    status: Status
    phrases: tuple[PhraseEntry, ...] = ()
    modes: tuple[ModeEntry, ...] = ()
    vocabulary: Vocabulary = field(default_factory=Vocabulary)
    ledger_readers: tuple[ReaderEntry, ...] = ()
    note: str = ""
    """Why a disabled plugin's declarations are unknown, if they are."""

    @property
    def enabled(self) -> bool:
        return self.status == "enabled"


@dataclass(frozen=True)
class _Candidate:
    name: str
    version: str
    distribution: str
    builtin: bool
    load: Callable[[], object]


# --- the merged view -----------------------------------------------------------
class PluginSet:
    """Every loaded plugin's declarations, merged; what the compiler resolves against."""

    def __init__(
        self,
        plugins: Sequence[PluginInfo],
        manager: pluggy.PluginManager,
    ) -> None:
        self.plugins = tuple(plugins)
        self.manager = manager
        enabled = [p for p in self.plugins if p.enabled]
        self.versions: dict[str, str] = {p.name: p.version for p in enabled}
        overrides: list[Override] = []
        by_key: dict[tuple[Namespace, tuple[str, ...]], PhraseEntry] = {}
        modes: dict[str, ModeEntry] = {}
        readers: dict[str, ReaderEntry] = {}
        for info in enabled:
            for entry in info.phrases:
                old = by_key.get(entry.key)
                if old is not None:
                    overrides.append(Override("phrase", entry.pattern.head, info.name, old.plugin))
                by_key[entry.key] = entry
            for mode in info.modes:
                if mode.mode.name in modes:
                    overrides.append(
                        Override("mode", mode.mode.name, info.name, modes[mode.mode.name].plugin)
                    )
                modes[mode.mode.name] = mode
            for reader in info.ledger_readers:
                if reader.reader.name in readers:
                    overrides.append(
                        Override(
                            "ledger reader",
                            reader.reader.name,
                            info.name,
                            readers[reader.reader.name].plugin,
                        )
                    )
                readers[reader.reader.name] = reader
        self.overrides = tuple(overrides)
        self.modes = modes
        self.ledger_readers = readers
        phrases: dict[str, list[PhraseEntry]] = {kind: [] for kind in BASE_FOR_KIND}
        for entry in by_key.values():
            phrases[entry.kind].append(entry)
        self.phrases: dict[str, tuple[PhraseEntry, ...]] = {
            kind: tuple(found) for kind, found in phrases.items()
        }
        self._namespaces: dict[Namespace, tuple[PhraseEntry, ...]] = {
            ns: tuple(e for e in by_key.values() if e.namespace == ns)
            for ns in ("clause", "source", "target", "leftover")
        }
        self.vocabulary, self._origins = _merge_vocabularies(enabled)
        _, self._disabled_origins = _merge_vocabularies(
            [p for p in self.plugins if p.status == "disabled"]
        )

    # --- building one ------------------------------------------------------------
    @classmethod
    def from_plugins(
        cls,
        plugins: Mapping[str, object] | Iterable[tuple[str, object]],
        *,
        disabled: Iterable[str] = (),
        version: str = "0.0.0",
    ) -> PluginSet:
        """A plugin set of in-process plugin objects (modules, classes, namespaces), in
        the order given; names in ``disabled`` are read but not registered."""
        pairs = list(plugins.items() if isinstance(plugins, Mapping) else plugins)
        off = set(disabled)
        candidates = [
            (_Candidate(name, version, "(in process)", False, _constant(obj)), name in off)
            for name, obj in pairs
        ]
        return _assemble(candidates, allowed=None)

    # --- lookups -----------------------------------------------------------------
    def in_namespace(self, namespace: Namespace) -> tuple[PhraseEntry, ...]:
        return self._namespaces[namespace]

    def settings_phrases(self) -> tuple[PhraseEntry, ...]:
        return tuple(e for e in self._namespaces["clause"] if e.phrase.where != "rule")

    def info(self, name: str) -> PluginInfo | None:
        return next((p for p in self.plugins if p.name == name), None)

    @property
    def not_allowed(self) -> tuple[str, ...]:
        """Installed plugins that ``PAYSPLIT_PLUGINS`` leaves out. They are never imported, so
        what they declare is unknown: an unknown phrase or word may be theirs."""
        return tuple(p.name for p in self.plugins if p.status == "not allowed")

    def word_origin(self, category: VocabularyCategory, word: str) -> str | None:
        """The loaded plugin that declared a status, kind or unearned type."""
        return self._origins.get((category, word))

    def disabled_word(self, category: VocabularyCategory, word: str) -> str | None:
        """The disabled plugin that would declare this word, if one does."""
        return self._disabled_origins.get((category, word))

    def disabled_phrase(self, namespace: Namespace, words: Sequence[Any]) -> PhraseEntry | None:
        """The disabled plugin's phrase these words would use, if there is one."""
        best: PhraseEntry | None = None
        for info in self.plugins:
            if info.status != "disabled":
                continue
            for entry in info.phrases:
                longer = best is None or len(entry.pattern.leading) > len(best.pattern.leading)
                if entry.namespace == namespace and longer and leading_match(entry.pattern, words):
                    best = entry
        return best

    def disabled_mode(self, name: str) -> ModeEntry | None:
        for info in self.plugins:
            if info.status == "disabled":
                for mode in info.modes:
                    if mode.mode.name == name:
                        return mode
        return None


def _merge_vocabularies(
    plugins: Sequence[PluginInfo],
) -> tuple[Vocabulary, dict[tuple[VocabularyCategory, str], str]]:
    statuses: dict[str, str] = {}
    kinds: dict[str, str] = {}
    unearned: dict[str, str] = {}
    opt_in: set[str] = set()
    origins: dict[tuple[VocabularyCategory, str], str] = {}
    for info in plugins:
        vocabulary = info.vocabulary
        for category, merged, words in (
            ("statuses", statuses, vocabulary.statuses),
            ("kinds", kinds, vocabulary.kinds),
            ("unearned_types", unearned, vocabulary.unearned_types),
        ):
            for word, meaning in words.items():
                merged.setdefault(word, meaning)
                origins.setdefault((category, word), info.name)  # type: ignore[arg-type]
        opt_in |= vocabulary.opt_in_kinds
    return (
        Vocabulary(
            statuses=statuses, kinds=kinds, opt_in_kinds=frozenset(opt_in), unearned_types=unearned
        ),
        origins,
    )


# --- loading -------------------------------------------------------------------
def installed() -> list[_Candidate]:
    """Every plugin published under the ``paysplit`` entry-point group."""
    found: dict[str, _Candidate] = {}
    for point in entry_points(group=GROUP):
        dist = point.dist
        distribution = dist.name if dist is not None else "unknown"
        version = dist.version if dist is not None else "unknown"
        candidate = _Candidate(
            point.name,
            version,
            distribution,
            distribution == BUILTIN_DISTRIBUTION,
            _loader(point),
        )
        if point.name in found and found[point.name].distribution != distribution:
            raise PluginError(
                point.name,
                f"two installed distributions declare it ({found[point.name].distribution} "
                f"and {distribution}); uninstall one",
            )
        found[point.name] = candidate
    return sorted(found.values(), key=lambda c: (not c.builtin, c.name))


def _loader(point: EntryPoint) -> Callable[[], object]:
    return point.load


def _constant(plugin: object) -> Callable[[], object]:
    return lambda: plugin


def load(disabled: Iterable[str] = (), allowed: Iterable[str] | None = None) -> PluginSet:
    """Load the installed plugins, less the ``disabled`` ones; with ``allowed``, only those."""
    candidates = installed()
    names = [c.name for c in candidates]
    off = _known(disabled, names, "--disable-plugin / PAYSPLIT_DISABLE_PLUGINS")
    only = None if allowed is None else _known(allowed, names, "PAYSPLIT_PLUGINS")
    return _assemble([(c, c.name in off) for c in candidates], allowed=only)


def _known(given: Iterable[str], names: list[str], where: str) -> set[str]:
    chosen = set(given)
    unknown = sorted(chosen - set(names))
    if unknown:
        listed = ", ".join(names) or "(none)"
        raise UsageError(
            f"unknown plugin {', '.join(repr(u) for u in unknown)} in {where}; "
            f"installed plugins: {listed}"
        )
    return chosen


def _assemble(candidates: Sequence[tuple[_Candidate, bool]], allowed: set[str] | None) -> PluginSet:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    for candidate, is_disabled in candidates:
        if allowed is not None and candidate.name not in allowed:
            infos.append(_info(candidate, "not allowed"))
        elif is_disabled:
            infos.append(_read_disabled(candidate))
        else:
            plugin = _import(candidate)
            try:
                manager.register(plugin, name=candidate.name)
            except (ValueError, pluggy.PluginValidationError) as exc:
                raise PluginError(candidate.name, f"cannot be registered: {exc}") from None
            infos.append(_info(candidate, "enabled"))
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        name = manager.get_name(exc.plugin) or "?"
        raise PluginError(name, f"implements a hook paysplit does not have: {exc}") from None
    declared = [_declare(manager, info) if info.status == "enabled" else info for info in infos]
    return PluginSet(declared, manager)


def _info(candidate: _Candidate, status: Status, note: str = "") -> PluginInfo:
    return PluginInfo(
        candidate.name,
        candidate.version,
        candidate.distribution,
        candidate.builtin,
        status,
        note=note,
    )


def _import(candidate: _Candidate) -> object:
    try:
        return candidate.load()
    except Exception as exc:
        raise PluginError(
            candidate.name, f"cannot be imported: {type(exc).__name__}: {exc}"
        ) from None


def _read_disabled(candidate: _Candidate) -> PluginInfo:
    """A disabled plugin's declarations, read in a manager of its own; any failure
    only means they are unknown (disabling is how a broken plugin is set aside)."""
    scratch = pluggy.PluginManager(hookspecs.PROJECT)
    scratch.add_hookspecs(hookspecs)
    info = _info(candidate, "disabled")
    try:
        scratch.register(candidate.load(), name=candidate.name)
        return _declare(scratch, info)
    except Exception as exc:
        return _info(candidate, "disabled", f"declarations unknown: {type(exc).__name__}: {exc}")


def _declare(manager: pluggy.PluginManager, info: PluginInfo) -> PluginInfo:
    name, version = info.name, info.version
    phrases: list[PhraseEntry] = []
    for hook in HOOK_KINDS:
        for result in _call(manager, name, hook):
            phrases.extend(_phrases(name, version, hook, result))
    keys = [p.key for p in phrases]
    for key in keys:
        if keys.count(key) > 1:
            raise PluginError(name, f'declares two phrases starting "{" ".join(key[1])}"')
    modes = [m for r in _call(manager, name, "paysplit_modes") for m in _modes(name, version, r)]
    vocabularies = [_vocabulary(name, r) for r in _call(manager, name, "paysplit_vocabulary")]
    readers = [
        r
        for result in _call(manager, name, "paysplit_ledger_readers")
        for r in _readers(name, version, result)
    ]
    for entry in phrases:
        _check_default(entry)
    return PluginInfo(
        name,
        version,
        info.distribution,
        info.builtin,
        info.status,
        tuple(phrases),
        tuple(modes),
        _union(vocabularies),
        tuple(readers),
        info.note,
    )


def _call(manager: pluggy.PluginManager, name: str, hook: str) -> list[object]:
    plugin = manager.get_plugin(name)
    caller = getattr(manager.hook, hook)
    results: list[object] = []
    for impl in caller.get_hookimpls():
        if impl.plugin is not plugin:
            continue
        if impl.hookwrapper or impl.wrapper:
            raise PluginError(name, f"{hook} cannot be a wrapper: it declares, it does not wrap")
        try:
            results.append(impl.function())
        except Exception as exc:
            raise PluginError(name, f"{hook} raised {type(exc).__name__}: {exc}") from None
    return results


def _sequence(name: str, hook: str, result: object, item: type) -> list[Any]:
    if not isinstance(result, list | tuple) or not all(isinstance(r, item) for r in result):
        raise PluginError(
            name, f"{hook} returned {_shown(result)}; it must return a list of {item.__name__}"
        )
    return list(result)


def _phrases(name: str, version: str, hook: str, result: object) -> list[PhraseEntry]:
    entries = []
    for phrase in _sequence(name, hook, result, Phrase):
        label = f"phrase {phrase.pattern!r}"
        if not isinstance(phrase.pattern, str):
            raise PluginError(
                name, f"a phrase's pattern must be a string, not {_shown(phrase.pattern)}"
            )
        try:
            pattern = parse_pattern(phrase.pattern)
        except PatternError as exc:
            raise PluginError(name, f"{label}: {exc}") from None
        if phrase.kind not in BASE_FOR_KIND:
            raise PluginError(
                name, f"{label}: unknown kind {phrase.kind!r} (kinds: {', '.join(BASE_FOR_KIND)})"
            )
        if phrase.kind not in HOOK_KINDS[hook]:
            raise PluginError(
                name,
                f"{label}: a {phrase.kind} phrase cannot come from {hook} "
                f"(it returns {', '.join(sorted(HOOK_KINDS[hook]))} phrases)",
            )
        _check_fields(name, label, phrase)
        namespace = namespace_of(phrase.kind)
        if pattern.leading[0] in CORE_WORDS[namespace]:
            raise PluginError(
                name, f'{label}: "{pattern.leading[0]}" is core syntax here and cannot start it'
            )
        if any(pattern.leading[: len(core)] == core for core in CORE_SETTINGS):
            raise PluginError(name, f"{label}: it would hide a core setting")
        entries.append(PhraseEntry(phrase, pattern, name, version))
    return entries


def _check_fields(name: str, label: str, phrase: Phrase) -> None:
    problems = []
    if not callable(phrase.build):
        problems.append("build must be callable")
    if not isinstance(phrase.summary, str) or not phrase.summary.strip():
        problems.append("summary must be a sentence")
    if not isinstance(phrase.example, str):
        problems.append("example must be a string")
    if phrase.where not in ("rule", "settings", "both"):
        problems.append(f"where must be rule, settings or both, not {phrase.where!r}")
    elif phrase.where != "rule" and phrase.kind != "guard":
        problems.append("only a guard may be written in the settings")
    if phrase.default is not None and (
        not isinstance(phrase.default, str) or phrase.where == "rule"
    ):
        problems.append("default must be clause text, and only for a settings phrase")
    redundant = phrase.makes_redundant
    if not isinstance(redundant, tuple | list) or not all(isinstance(r, str) for r in redundant):
        problems.append("makes_redundant must be a tuple of phrases' fixed words")
    if problems:
        raise PluginError(name, f"{label}: {'; '.join(problems)}")


def _check_default(entry: PhraseEntry) -> None:
    default = entry.phrase.default
    if default is None:
        return
    problem = f"phrase {entry.phrase.pattern!r}: its default {default!r}"
    try:
        clauses = parse_clauses(default)
    except SyntaxProblem as exc:
        raise PluginError(entry.plugin, f"{problem} does not parse: {exc.message}") from None
    if len(clauses) != 1 or not isinstance(clauses[0], PhraseClause):
        raise PluginError(entry.plugin, f"{problem} must be one clause of this phrase")
    words = clauses[0].words.items
    if not leading_match(entry.pattern, words) or not isinstance(
        match(entry.pattern, words, lambda _c, _w: None), dict
    ):
        raise PluginError(entry.plugin, f"{problem} does not fit the pattern")


def _modes(name: str, version: str, result: object) -> list[ModeEntry]:
    entries = []
    for mode in _sequence(name, "paysplit_modes", result, Mode):
        words = mode.name.split() if isinstance(mode.name, str) else []
        if not words or not all(WORD_RE.fullmatch(w) for w in words):
            raise PluginError(name, f"mode name {mode.name!r} must be words of the rule language")
        if not isinstance(mode.expansion, str) or not isinstance(mode.summary, str):
            raise PluginError(name, f"mode {mode.name!r}: expansion and summary must be strings")
        try:
            clauses = parse_clauses(mode.expansion)
        except SyntaxProblem as exc:
            raise PluginError(
                name,
                f"mode {mode.name!r}: its expansion {mode.expansion!r} does not parse: "
                f"{exc.message} (column {exc.column})",
            ) from None
        entries.append(
            ModeEntry(Mode(" ".join(words), mode.expansion, mode.summary), name, version, clauses)
        )
    return entries


def _vocabulary(name: str, result: object) -> Vocabulary:
    if not isinstance(result, Vocabulary):
        raise PluginError(
            name, f"paysplit_vocabulary returned {_shown(result)}; it must return a Vocabulary"
        )
    for category in ("statuses", "kinds", "unearned_types"):
        words = getattr(result, category)
        if not isinstance(words, Mapping) or not all(
            isinstance(k, str) and WORD_RE.fullmatch(k) and isinstance(v, str)
            for k, v in words.items()
        ):
            raise PluginError(
                name, f"vocabulary {category} must map words of the rule language to meanings"
            )
    opt_in = result.opt_in_kinds
    if not isinstance(opt_in, frozenset | set | tuple | list) or not all(
        isinstance(k, str) for k in opt_in
    ):
        raise PluginError(name, "vocabulary opt_in_kinds must be a set of kinds")
    return result


def _union(vocabularies: Sequence[Vocabulary]) -> Vocabulary:
    if len(vocabularies) == 1:
        return vocabularies[0]
    statuses: dict[str, str] = {}
    kinds: dict[str, str] = {}
    unearned: dict[str, str] = {}
    opt_in: set[str] = set()
    for v in vocabularies:
        statuses.update(v.statuses)
        kinds.update(v.kinds)
        unearned.update(v.unearned_types)
        opt_in |= set(v.opt_in_kinds)
    return Vocabulary(statuses, kinds, frozenset(opt_in), unearned)


def _readers(name: str, version: str, result: object) -> list[ReaderEntry]:
    entries = []
    for reader in _sequence(name, "paysplit_ledger_readers", result, LedgerReader):
        if not isinstance(reader.name, str) or not reader.name or not callable(reader.read):
            raise PluginError(name, f"ledger reader {reader.name!r}: needs a name and a read()")
        entries.append(ReaderEntry(reader, name, version))
    return entries


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
