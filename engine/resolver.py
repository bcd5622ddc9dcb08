"""Resolving a clause's words against the loaded phrases, and building its implementation.

The phrase whose fixed leading words match the most words wins; its
arguments are parsed per the pattern's types (:mod:`paysplit.patterns`) and
its ``build`` is called once for this use. What ``build`` returns must be an
instance of the base class for the phrase's kind, or the plugin is named in
a :class:`~paysplit.errors.PluginError`. An unknown phrase gets the closest
known one as a hint, and a phrase of a disabled plugin says so.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from paysplit.errors import Diagnostic, PluginError
from paysplit.patterns import MatchProblem, VocabularyCheck, closest, leading_match, match
from paysplit.phrases import ArgumentValue
from paysplit.plugin_manager import Namespace, PhraseEntry, PluginSet, VocabularyCategory
from paysplit.policy import BASE_FOR_KIND, Clause
from paysplit.rules import Location
from paysplit.syntax import Span, Word, Words

NOUNS: dict[VocabularyCategory, tuple[str, str]] = {
    "statuses": ("status", "statuses"),
    "kinds": ("charge kind", "charge kinds"),
    "unearned_types": ("unearned type", "unearned types"),
}
CORE_FORMS: dict[Namespace, tuple[str, ...]] = {
    "clause": (
        "oldest first",
        "newest first",
        "largest first",
        "smallest first",
        "order by",
        "on payment",
        "on charge added",
        "on demand",
        "from payment",
        "from unallocated",
        "from unearned",
        "to charges",
        "to installments",
        "leftover keep",
    ),
    "source": ("payment", "unallocated", "unearned", "unearned type"),
    "target": ("charges", "installments"),
    "leftover": ("keep",),
}
KEYWORD: dict[Namespace, str] = {
    "clause": "",
    "source": "from",
    "target": "to",
    "leftover": "leftover",
}
NAMESPACE_NOUN: dict[Namespace, str] = {
    "clause": "clause",
    "source": "source",
    "target": "target",
    "leftover": "leftover action",
}


def with_left_out(plugins: PluginSet, hint: str) -> str:
    """``hint`` for something unknown, plus the plugins ``PAYSPLIT_PLUGINS`` leaves out: they
    are never imported, so whether it is theirs cannot be known, only that it may be."""
    names = plugins.not_allowed
    if not names:
        return hint
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    note = (
        f"it may come from a plugin that PAYSPLIT_PLUGINS does not allow ({shown}); "
        "add that plugin to PAYSPLIT_PLUGINS"
    )
    return f"{hint}; or {note}" if hint else note


def vocabulary_check(plugins: PluginSet) -> VocabularyCheck:
    """Checks a status, kind or unearned type against the loaded vocabulary."""

    def check(category: str, word: str) -> tuple[str, str] | None:
        key: VocabularyCategory = category  # type: ignore[assignment]
        words = getattr(plugins.vocabulary, category)
        if word in words:
            return None
        noun, plural = NOUNS[key]
        disabled = plugins.disabled_word(key, word)
        if disabled is not None:
            return (
                f'{noun} "{word}" comes from plugin {disabled}, which is disabled',
                "enable the plugin, or remove it from the rule",
            )
        close = closest(word, list(words))
        if close is not None:
            return f'unknown {noun} "{word}"', with_left_out(plugins, f"did you mean {close}?")
        known = ", ".join(sorted(words)) or "(none: no loaded plugin declares any)"
        return f'unknown {noun} "{word}"', with_left_out(plugins, f"known {plural}: {known}")

    return check


@dataclass
class Site:
    """Where diagnostics go: the file being compiled, or, inside a mode's expansion,
    the ``mode`` clause that used it."""

    file: str
    lines: Sequence[str]
    mode: tuple[str, Span, str] | None = None
    """(mode name, the mode clause's span, its plugin) while expanding a mode."""
    errors: list[Diagnostic] = field(default_factory=list)

    def location(self, span: Span) -> Location:
        at = self.mode[1] if self.mode is not None else span
        return Location(self.file, at.line, at.column)

    def error(self, message: str, span: Span, hint: str = "") -> None:
        if self.mode is not None:
            name, at, _ = self.mode
            message = f'mode "{name}" expands to clauses with a mistake: {message}'
            span = at
        line = self.lines[span.line - 1] if 0 < span.line <= len(self.lines) else ""
        self.errors.append(
            Diagnostic(self.file, span.line, span.column, message, hint, "error", line, span.width)
        )

    def inside(self, name: str, span: Span, plugin: str) -> Site:
        if self.mode is not None:
            return Site(self.file, self.lines, self.mode, self.errors)
        return Site(self.file, self.lines, (name, span, plugin), self.errors)


@dataclass(frozen=True)
class Resolved:
    entry: PhraseEntry
    impl: Clause


class Resolver:
    def __init__(self, plugins: PluginSet) -> None:
        self.plugins = plugins
        self.check_word = vocabulary_check(plugins)

    def find(self, namespace: Namespace, words: Sequence[Word]) -> PhraseEntry | None:
        best: PhraseEntry | None = None
        for entry in self.plugins.in_namespace(namespace):
            if leading_match(entry.pattern, words) and (
                best is None or len(entry.pattern.leading) > len(best.pattern.leading)
            ):
                best = entry
        return best

    def resolve(
        self,
        namespace: Namespace,
        words: Words,
        site: Site,
        allowed: Callable[[PhraseEntry], str | None] = lambda _e: None,
        extra_forms: Sequence[tuple[str, str | None]] = (),
    ) -> Resolved | None:
        """Find, check and build the phrase these words use; None after reporting why not."""
        entry = self.find(namespace, words.items)
        if entry is None:
            self.unknown(namespace, words, site, extra_forms)
            return None
        refusal = allowed(entry)
        if refusal is not None:
            site.error(refusal, words.span)
            return None
        values = match(entry.pattern, words.items, self.check_word)
        if isinstance(values, MatchProblem):
            self.report(values, words, site)
            return None
        return Resolved(entry, build(entry, values, words.text))

    def report(self, problem: MatchProblem, words: Words, site: Site) -> None:
        if problem.at is not None:
            span = words.items[problem.at].span
        else:
            last = words.items[-1].span
            span = Span(last.end_line, last.end_column, last.end_line, last.end_column + 1)
        site.error(problem.message, span, problem.hint)

    def unknown(
        self,
        namespace: Namespace,
        words: Words,
        site: Site,
        extra_forms: Sequence[tuple[str, str | None]] = (),
    ) -> None:
        keyword = KEYWORD[namespace]
        written = f"{keyword} {words.text}".strip()
        disabled = self.plugins.disabled_phrase(namespace, words.items)
        if disabled is not None:
            site.error(
                f'{NAMESPACE_NOUN[namespace]} "{written}" comes from plugin {disabled.plugin}, '
                "which is disabled",
                words.span,
                "enable the plugin, or remove the clause",
            )
            return
        elsewhere = self.elsewhere(namespace, words)
        if elsewhere is not None:
            site.error(elsewhere, words.span)
            return
        hint = with_left_out(self.plugins, self.suggestion(namespace, words, extra_forms))
        site.error(f'unknown {NAMESPACE_NOUN[namespace]} "{words.text}"', words.span, hint)

    def elsewhere(self, namespace: Namespace, words: Words) -> str | None:
        """Words that name a phrase written after another keyword (or none)."""
        others: tuple[Namespace, ...] = ("clause", "source", "target", "leftover")
        for other in others:
            if other == namespace:
                continue
            entry = self.find(other, words.items)
            if entry is None:
                continue
            if other == "clause":
                return (
                    f'"{words.text}" is not a {NAMESPACE_NOUN[namespace]}: write it as a '
                    f'clause of its own, without "{KEYWORD[namespace]}"'
                )
            return (
                f'"{words.text}" is a {NAMESPACE_NOUN[other]}: '
                f'write "{KEYWORD[other]} {words.text}"'
            )
        return None

    def suggestion(
        self,
        namespace: Namespace,
        words: Words,
        extra_forms: Sequence[tuple[str, str | None]] = (),
    ) -> str:
        forms: list[tuple[str, str | None]] = [(f, None) for f in CORE_FORMS[namespace]]
        forms += [(e.pattern.head, e.plugin) for e in self.plugins.in_namespace(namespace)]
        forms += list(extra_forms)
        if namespace == "clause":
            keyworded: tuple[Namespace, ...] = ("source", "target", "leftover")
            for other in keyworded:
                forms += [
                    (f"{KEYWORD[other]} {e.pattern.head}", e.plugin)
                    for e in self.plugins.in_namespace(other)
                ]
        best = closest_form([w.text for w in words.items], forms)
        if best is None:
            return ""
        origin = f" (from plugin {best[1]})" if best[1] else ""
        shown = f"{KEYWORD[namespace]} {best[0]}".strip()
        return f'did you mean "{shown}"?{origin}'


MAX_SUGGESTED = 64
"""Words written longer than this (in the part compared with a phrase) get no suggestion:
no phrase is that long, and comparing a 64 KB word with every phrase took seconds."""


def closest_form(
    written: Sequence[str], forms: Sequence[tuple[str, str | None]]
) -> tuple[str, str | None] | None:
    """The form (a phrase's fixed words) closest to the words written, at least 60% alike,
    completed with the words written after it, and the plugin it comes from; or None.

    Each form is compared with as many words as it has. difflib's cheap upper bounds come
    first (as in ``get_close_matches``), so a form that cannot reach the best score costs
    nothing; the result is the one the full comparison gives.
    """
    best: tuple[float, str, str | None] | None = None
    matcher = difflib.SequenceMatcher()
    for form, plugin in forms:
        size = len(form.split())
        head = " ".join(written[:size])
        if len(head) > MAX_SUGGESTED:
            continue
        matcher.set_seqs(head, form)
        floor = 0.6 if best is None else best[0]
        if matcher.real_quick_ratio() < floor or matcher.quick_ratio() < floor:
            continue
        score = matcher.ratio()
        if score >= 0.6 and (best is None or score > best[0]):
            best = (score, f"{form} {' '.join(written[size:])}".strip(), plugin)
    return None if best is None else (best[1], best[2])


def build(entry: PhraseEntry, values: dict[str, ArgumentValue], text: str) -> Clause:
    """Call the phrase's ``build`` once and check what it returns."""
    try:
        impl = entry.phrase.build(MappingProxyType(values))
    except Exception as exc:
        raise PluginError(
            entry.plugin, f'building the clause "{text}" failed: {type(exc).__name__}: {exc}'
        ) from None
    base = BASE_FOR_KIND[entry.kind]
    if not isinstance(impl, base):
        raise PluginError(
            entry.plugin,
            f'the phrase "{entry.pattern.text}" built {type(impl).__name__}, which is not a '
            f"{base.__name__} (a {entry.kind} phrase must build one)",
        )
    return impl
