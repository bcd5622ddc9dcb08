"""Phrase patterns (see :mod:`paysplit.phrases`): parsing them, and matching a clause.

A pattern is fixed leading words, then required words and ``{name:type}``
arguments, then ``[keyword ...]`` optional groups that may be written in any
order, each once::

    hold {method:word} for {days:days} [memo {memo:string}] [provider {provider:provider|same}]

In an alternation (``a|b``) every alternative is a literal word, except a
type name, which stands for its type. The id types ``provider``, ``office``
and ``patient`` are also everyday words, so in an alternation they are types
only when they are the argument's own name: ``{provider:provider|same}`` is
a provider id or ``same``, ``{due_to:patient|insurance}`` is one of two words.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from paysplit.money import MoneyError, parse_amount
from paysplit.phrases import ARGUMENT_TYPES, ArgumentValue
from paysplit.syntax import Word

WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*")
_PIECES = re.compile(r"\{[^{}]*\}|\[|\]|[^\s\[\]{}]+")
_ID_TYPES = frozenset({"provider", "office", "patient"})
VOCABULARY_TYPES = {"status": "statuses", "kind": "kinds", "unearned_type": "unearned_types"}
"""Argument type -> the vocabulary category its words must be in."""

_TYPE_WORDS = {
    "string": "a quoted string",
    "money": "an amount such as 12.50",
    "number": "a whole number",
    "days": "a number of days such as 90 days",
    "word": "a word",
    "words": "a list of words such as (a, b)",
    "status": "a status",
    "statuses": "a list of statuses such as (due_patient, pending_patient)",
    "kind": "a charge kind",
    "unearned_type": "an unearned type",
    "provider": "a provider id",
    "office": "an office id",
    "patient": "a patient id",
}


class PatternError(ValueError):
    """A pattern a plugin declared that does not follow the pattern language."""


@dataclass(frozen=True)
class Fixed:
    word: str


@dataclass(frozen=True)
class Argument:
    name: str
    types: tuple[str, ...]
    literals: tuple[str, ...]

    def describe(self) -> str:
        parts = [_TYPE_WORDS[t] for t in self.types]
        parts += [f'"{w}"' for w in self.literals]
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]

    def shown(self) -> str:
        return "|".join((*self.types, *self.literals)) if self.types else "|".join(self.literals)


Element = Fixed | Argument


@dataclass(frozen=True)
class Group:
    keyword: str
    elements: tuple[Element, ...]


@dataclass(frozen=True)
class Pattern:
    text: str
    leading: tuple[str, ...]
    """The fixed words a clause must start with; the longest match wins."""
    required: tuple[Element, ...]
    groups: tuple[Group, ...]

    @property
    def arguments(self) -> tuple[Argument, ...]:
        found = [e for e in self.required if isinstance(e, Argument)]
        for group in self.groups:
            found += [e for e in group.elements if isinstance(e, Argument)]
        return tuple(found)

    @property
    def head(self) -> str:
        return " ".join(self.leading)


def parse_pattern(text: str) -> Pattern:
    """Parse a declared pattern, or raise :class:`PatternError` saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise PatternError("a pattern must be a non-empty string")
    pieces = _PIECES.findall(text)
    leading: list[str] = []
    required: list[Element] = []
    groups: list[Group] = []
    names: set[str] = set()
    index = 0
    while index < len(pieces):
        piece = pieces[index]
        if piece == "[":
            close = _find(pieces, index)
            groups.append(_group(pieces[index + 1 : close], names, text))
            index = close + 1
            continue
        if piece == "]":
            raise PatternError(f'"]" without "[" in {text!r}')
        if groups:
            raise PatternError(f"optional groups must come last in {text!r}")
        element = _element(piece, names, text)
        if isinstance(element, Fixed) and not required:
            leading.append(element.word)
        else:
            required.append(element)
        index += 1
    if not leading:
        raise PatternError(f"a pattern must start with a fixed word: {text!r}")
    keywords = [g.keyword for g in groups]
    if len(set(keywords)) != len(keywords):
        raise PatternError(f"two optional groups start with the same word in {text!r}")
    return Pattern(" ".join(text.split()), tuple(leading), tuple(required), tuple(groups))


def _find(pieces: list[str], start: int) -> int:
    for index in range(start + 1, len(pieces)):
        if pieces[index] == "[":
            raise PatternError("optional groups cannot be nested")
        if pieces[index] == "]":
            return index
    raise PatternError('"[" without "]"')


def _group(pieces: list[str], names: set[str], text: str) -> Group:
    elements = [_element(p, names, text) for p in pieces]
    if not elements or not isinstance(elements[0], Fixed):
        raise PatternError(f"an optional group must start with a fixed word in {text!r}")
    if not any(isinstance(e, Argument) for e in elements):
        raise PatternError(f"an optional group must hold an argument in {text!r}")
    return Group(elements[0].word, tuple(elements[1:]))


def _element(piece: str, names: set[str], text: str) -> Element:
    if not piece.startswith("{"):
        if not WORD_RE.fullmatch(piece):
            raise PatternError(f"{piece!r} is not a word the rule language can spell")
        return Fixed(piece)
    inner = piece[1:-1].strip()
    name, colon, spec = inner.partition(":")
    name, spec = name.strip(), spec.strip()
    if not colon or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or not spec:
        raise PatternError(f"{piece!r} is not written {{name:type}} in {text!r}")
    if name in names:
        raise PatternError(f"argument {name!r} appears twice in {text!r}")
    names.add(name)
    options = [o.strip() for o in spec.split("|")]
    types: list[str] = []
    literals: list[str] = []
    for option in options:
        if (len(options) == 1 and option in ARGUMENT_TYPES) or (
            option in ARGUMENT_TYPES and (option not in _ID_TYPES or option == name)
        ):
            types.append(option)
        elif WORD_RE.fullmatch(option):
            literals.append(option)
        else:
            raise PatternError(f"{option!r} is neither a type nor a word in {text!r}")
    if len(options) == 1 and not types:
        raise PatternError(
            f"unknown argument type {options[0]!r} in {text!r} "
            f"(types: {', '.join(sorted(ARGUMENT_TYPES))})"
        )
    return Argument(name, tuple(types), tuple(literals))


# --- matching a clause -------------------------------------------------------
@dataclass(frozen=True)
class MatchProblem:
    """Why a clause's words do not fit its pattern; ``at`` is the word to point at
    (None: just after the last word)."""

    message: str
    hint: str = ""
    at: int | None = None


VocabularyCheck = Callable[[str, str], tuple[str, str] | None]
"""(category, word) -> None when the word is declared, else (message, hint)."""


def leading_match(pattern: Pattern, words: Sequence[Word]) -> bool:
    if len(words) < len(pattern.leading):
        return False
    return all(
        w.kind == "word" and w.text == fixed
        for w, fixed in zip(words, pattern.leading, strict=False)
    )


def match(
    pattern: Pattern, words: Sequence[Word], check_word: VocabularyCheck
) -> dict[str, ArgumentValue] | MatchProblem:
    """Parse the words after the pattern's leading words into its arguments."""
    values: dict[str, ArgumentValue] = {a.name: None for a in pattern.arguments}
    position = len(pattern.leading)
    said = list(pattern.leading)
    for element in pattern.required:
        problem = _take(element, words, position, said, values, check_word)
        if problem is not None:
            return problem
        said.append(words[position].text)
        position += 1
    used: dict[str, int] = {}
    groups = {g.keyword: g for g in pattern.groups}
    while position < len(words):
        word = words[position]
        group = groups.get(word.text) if word.kind == "word" else None
        if group is None:
            return _unexpected(pattern, words, position, said, used)
        if group.keyword in used:
            return MatchProblem(f'"{group.keyword}" is given twice', "give it once", position)
        used[group.keyword] = position
        said = [group.keyword]
        position += 1
        for element in group.elements:
            problem = _take(element, words, position, said, values, check_word)
            if problem is not None:
                return problem
            said.append(words[position].text)
            position += 1
    return values


def _unexpected(
    pattern: Pattern, words: Sequence[Word], position: int, said: list[str], used: dict[str, int]
) -> MatchProblem:
    left = [g.keyword for g in pattern.groups if g.keyword not in used]
    after = " ".join(w.text for w in words[:position])
    if left:
        options = ", ".join(f'"{k}"' for k in left)
        return MatchProblem(
            f'unexpected {_shown(words[position])} after "{after}"',
            f"it may go on with {options}, or end here",
            position,
        )
    return MatchProblem(
        f'unexpected {_shown(words[position])}: the clause ends after "{after}"', "", position
    )


def _take(
    element: Element,
    words: Sequence[Word],
    position: int,
    said: list[str],
    values: dict[str, ArgumentValue],
    check_word: VocabularyCheck,
) -> MatchProblem | None:
    after = " ".join(said)
    if isinstance(element, Fixed):
        if position >= len(words):
            return MatchProblem(f'expected "{element.word}" after "{after}"')
        if words[position].kind != "word" or words[position].text != element.word:
            return MatchProblem(
                f'expected "{element.word}" after "{after}", found {_shown(words[position])}',
                at=position,
            )
        return None
    if position >= len(words):
        return MatchProblem(f'expected {element.describe()} after "{after}"')
    word = words[position]
    result = _value(element, word, check_word)
    if isinstance(result, MatchProblem):
        return MatchProblem(result.message, result.hint, position)
    values[element.name] = result
    return None


def _value(
    argument: Argument, word: Word, check_word: VocabularyCheck
) -> ArgumentValue | MatchProblem:
    if word.kind == "word" and word.text in argument.literals:
        return word.text
    failures: list[MatchProblem] = []
    for kind in argument.types:
        result = _typed(kind, word, check_word)
        if not isinstance(result, MatchProblem):
            return result
        failures.append(result)
    if len(failures) == 1 and not argument.literals and failures[0].message:
        return failures[0]
    hint = ""
    if argument.literals and word.kind == "word":
        close = closest(word.text, argument.literals)
        if close:
            hint = f'did you mean "{close}"?'
    return MatchProblem(f"expected {argument.describe()}, found {_shown(word)}", hint)


def _typed(kind: str, word: Word, check_word: VocabularyCheck) -> ArgumentValue | MatchProblem:
    if kind == "string":
        return word.value if word.kind == "string" else _expected(kind, word)
    if kind in ("money", "number"):
        if word.kind != "amount":
            return _expected(kind, word)
        if kind == "number":
            if not re.fullmatch(r"-?[0-9]+", word.text):
                return _expected(kind, word)
            return int(word.text)
        try:
            return parse_amount(word.text)
        except MoneyError as exc:
            return MatchProblem(str(exc))
    if kind == "days":
        if word.kind != "duration":
            hint = f"write {word.text} days" if word.kind == "amount" else ""
            return MatchProblem(f"expected {_TYPE_WORDS[kind]}, found {_shown(word)}", hint)
        return int(word.text.split()[0])
    if kind == "word":
        return word.text if word.kind == "word" else _expected(kind, word)
    if kind in ("words", "statuses"):
        items = word.items if word.kind == "list" else (word,)
        if any(i.kind != "word" for i in items):
            return _expected(kind, word)
        if kind == "statuses":
            for item in items:
                problem = check_word("statuses", item.text)
                if problem is not None:
                    return MatchProblem(*problem)
        return tuple(i.text for i in items)
    if kind in VOCABULARY_TYPES:
        if word.kind != "word":
            return _expected(kind, word)
        problem = check_word(VOCABULARY_TYPES[kind], word.text)
        return MatchProblem(*problem) if problem is not None else word.text
    # provider, office, patient: an id
    if word.kind in ("word", "string") or (
        word.kind == "amount" and word.text.isascii() and word.text.isdigit()
    ):
        return word.value
    return _expected(kind, word)


def _expected(kind: str, word: Word) -> MatchProblem:
    return MatchProblem(f"expected {_TYPE_WORDS[kind]}, found {_shown(word)}")


def _shown(word: Word) -> str:
    text = word.text if len(word.text) <= 40 else word.text[:37] + "..."
    return text if word.kind == "string" else f'"{text}"'


def closest(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The candidate closest to ``word`` (difflib), if any is close enough."""
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=cutoff)
    return found[0] if found else None
