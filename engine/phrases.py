"""What a plugin declares: clause phrases, modes, vocabulary and ledger readers.

These are the plain, frozen values the hooks of :mod:`paysplit.hookspecs`
return. A phrase is written as a *pattern*: fixed words, then typed
arguments and optional keyword groups::

    skip small balances
    skip codes {codes:words}
    write off {under:money} [memo {memo:string}] [provider {provider:provider|same}]

``{name:type}`` is an argument. Types: ``string`` (a quoted string),
``money`` (``$12.50``, ``12.50``, ``12``; given to ``build`` as cents),
``number`` (a whole number), ``days`` (``90 days``; given as an int),
``word`` (one bare word), ``words`` (a parenthesised list of bare words,
given as a tuple), ``status`` / ``kind`` / ``unearned_type`` (a word that
must be in the loaded vocabulary), ``provider`` / ``office`` / ``patient`` (an
id), and literal alternatives such as ``patient|insurance`` or
``provider|same``. ``[ ... ]`` is an optional group that starts with a fixed
word; optional groups may be written in any order, each once.

When a rule is compiled, the clause's words are matched against every
loaded pattern, the pattern with the most fixed leading words wins, and
``build`` is called once with the parsed arguments; what it returns must be
an instance of the base class for the phrase's kind (:mod:`paysplit.policy`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

ClauseKind = Literal[
    "scope",
    "filter",
    "order",
    "preference",
    "source",
    "target",
    "distribution",
    "guard",
    "leftover",
]
"""What a phrase does; it decides which base class ``build`` must return."""

ArgumentValue: TypeAlias = str | int | tuple[str, ...] | None
Arguments: TypeAlias = Mapping[str, ArgumentValue]
"""Parsed phrase arguments by name; an optional argument not written is None."""

ARGUMENT_TYPES = frozenset(
    {
        "string",
        "money",
        "number",
        "days",
        "word",
        "words",
        "status",
        "statuses",
        "kind",
        "unearned_type",
        "provider",
        "office",
        "patient",
    }
)


@dataclass(frozen=True)
class Phrase:
    """A clause phrase of the rule language, supplied by a plugin."""

    pattern: str
    """Fixed words, ``{name:type}`` arguments and ``[keyword ...]`` optional groups."""
    kind: ClauseKind
    build: Callable[[Arguments], Any]
    """Called once per use at compile time; returns the clause's implementation."""
    summary: str
    """One sentence for ``paysplit plugins``, the docs and error hints."""
    example: str = ""
    """A complete clause as a rule author would write it."""
    where: Literal["rule", "settings", "both"] = "rule"
    """Where the phrase may be written: in a rule, in the settings block, or both.
    A guard in the settings applies to every rule and every manual operation."""
    default: str | None = None
    """For a settings phrase: the clause in force when the settings do not name it,
    e.g. ``"refund limit 500.00"`` for a pattern ``refund limit {limit:money}``."""
    makes_redundant: tuple[str, ...] = ()
    """Fixed words of other phrases that add nothing when this one is present
    (a guard that forbids crossing providers makes a provider preference
    redundant); ``check`` warns."""


@dataclass(frozen=True)
class Mode:
    """A named preset that expands to clauses, written ``mode NAME`` (004's modes)."""

    name: str
    """The words after ``mode``, e.g. ``"self pay"`` for ``mode self pay``."""
    expansion: str
    """Clauses in the rule language, e.g.
    ``"oldest first where status in (due_patient, pending_patient)"``."""
    summary: str


@dataclass(frozen=True)
class Vocabulary:
    """Words a plugin adds, so that ``paysplit check`` can type-check rules that use them."""

    statuses: Mapping[str, str] = field(default_factory=dict)
    """Charge status -> what it means."""
    kinds: Mapping[str, str] = field(default_factory=dict)
    """Charge kind -> what it means."""
    opt_in_kinds: frozenset[str] = frozenset()
    """Kinds that are targets only when a scope clause admits them (``debit``: 004)."""
    unearned_types: Mapping[str, str] = field(default_factory=dict)
    """Unearned (prepaid credit) type -> what it means."""


@dataclass(frozen=True)
class LedgerReader:
    """Turns a vendor's export into a ledger document, chosen with ``--ledger-format NAME``."""

    name: str
    summary: str
    read: Callable[[Path], Mapping[str, Any]]
    """Reads the file and returns a mapping in the shape of ``paysplit-ledger/1``;
    amounts should be strings. Raise ValueError with a plain sentence on bad input."""
