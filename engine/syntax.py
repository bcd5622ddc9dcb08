"""The syntax tree of a rule file: frozen, typed nodes with their positions.

:mod:`paysplit.parser` builds these from Lark's parse tree; the compiler, the
formatter and the static checks read them. Nothing here knows about plugins:
a clause that is not core syntax is kept as a :class:`PhraseClause`, a list
of words and literals that the compiler later matches against the loaded
phrase patterns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

WordKind = Literal["word", "string", "amount", "date", "duration", "list"]
OperandKind = Literal["word", "qualified", "string", "amount", "date", "duration"]
Keyword = Literal["on", "from", "to", "leftover", "mode"]


@dataclass(frozen=True, slots=True)
class Span:
    """Where a node is written: first and last position (lines and columns from 1)."""

    line: int
    column: int
    end_line: int
    end_column: int

    @property
    def width(self) -> int:
        """Characters to underline (to the end of the first line when it spans lines)."""
        if self.end_line != self.line:
            return 1
        return max(1, self.end_column - self.column)


@dataclass(frozen=True, slots=True)
class Word:
    """One item of a phrase: a bare word, a literal, or a parenthesised list."""

    kind: WordKind
    text: str
    """As written (a string with its quotes)."""
    value: str
    """A string's content unescaped; otherwise the text."""
    span: Span
    items: tuple[Word, ...] = ()
    """A list's items."""


@dataclass(frozen=True, slots=True)
class Words:
    """The words of a phrase, and their source text."""

    items: tuple[Word, ...]
    text: str
    span: Span

    def bare(self) -> tuple[str, ...]:
        """The leading bare words (up to the first literal)."""
        out: list[str] = []
        for word in self.items:
            if word.kind != "word":
                break
            out.append(word.text)
        return tuple(out)


# --- expressions ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Operand:
    kind: OperandKind
    text: str
    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class Comparison:
    left: Operand
    op: str
    """``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in`` or ``not in``."""
    right: tuple[Operand, ...]
    """One operand, or a list's items for ``in`` and ``not in``."""
    span: Span


@dataclass(frozen=True, slots=True)
class Not:
    count: int
    """How many times ``not`` is written (only its parity matters)."""
    item: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Group:
    """Parentheses as written (kept so the formatter keeps them)."""

    item: Expr
    span: Span


Expr: TypeAlias = Comparison | Not | And | Or | Group


# --- clauses ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KeywordClause:
    """``on``, ``from``, ``to``, ``leftover`` or ``mode`` and the words after it."""

    keyword: Keyword
    words: Words
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class WhereClause:
    expr: Expr
    text: str
    span: Span
    """Starts at the ``where`` keyword."""


@dataclass(frozen=True, slots=True)
class OrderKey:
    field: Operand
    direction: Literal["asc", "desc"] | None
    span: Span


@dataclass(frozen=True, slots=True)
class OrderClause:
    """A named order (``oldest first``) or ``order by ...``, with its own ``where``."""

    name: Literal["oldest", "newest", "largest", "smallest"] | None
    keys: tuple[OrderKey, ...]
    where: WhereClause | None
    text: str
    """The order alone, without its ``where``."""
    span: Span


@dataclass(frozen=True, slots=True)
class PhraseClause:
    words: Words
    text: str
    span: Span


Clause: TypeAlias = KeywordClause | WhereClause | OrderClause | PhraseClause


# --- the file ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RuleDecl:
    name: str
    name_span: Span
    title: str | None
    clauses: tuple[Clause, ...]
    inline: bool
    span: Span
    """The ``rule`` keyword's position."""


@dataclass(frozen=True, slots=True)
class SettingsDecl:
    clauses: tuple[Clause, ...]
    span: Span


Item: TypeAlias = RuleDecl | SettingsDecl


@dataclass(frozen=True, slots=True)
class Comment:
    line: int
    column: int
    text: str
    """From ``#`` to the end of the line, trailing spaces removed."""
    own_line: bool
    """True when nothing but the comment is on its line."""


@dataclass(frozen=True, slots=True)
class RuleFile:
    """A parsed rule file: its items in written order and its comments."""

    path: str
    text: str
    items: tuple[Item, ...]
    comments: tuple[Comment, ...]
    lines: tuple[str, ...]
    """The text split at ``\\n`` (as the parser counts lines), without line ends."""

    def line(self, number: int) -> str:
        return self.lines[number - 1] if 0 < number <= len(self.lines) else ""
