"""Where a problem of a ledger is, and the order problems are listed in.

A reader finds problems in several passes (JSON, then the shape, then the ids and
references); each notes a :class:`Found` (its place as keys and list indices, and a
sentence) in one :class:`ProblemList`, which stops the load at :data:`MAX_PROBLEMS`.
:func:`ordered` then turns them into :class:`~paysplit.errors.Problem` s: in document
order, once each, with a printable JSON path (``accounts[0].charges[3].amount``) and a
message a terminal can carry on one line. :func:`shown_value` and :func:`kind_of` say
how a value the user wrote is quoted in a message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

from paysplit.errors import Problem
from paysplit.money import JsonNumber

Loc: TypeAlias = tuple[str | int, ...]
"""A place in a document: keys and list indices from the root."""

MAX_PROBLEMS = 1000
"""The most problems one load lists. Past it loading stops: a mangled file can hold millions."""


# --------------------------------------------------------------------------
# Problems found, before they become Problem(path, message)
# --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Found:
    where: Loc
    """Where the problem sorts (may name a key that is missing)."""
    message: str
    shown_at: Loc | None = None
    """The path printed, when it is not ``where`` (a missing field is shown on its record)."""


class Enough(Exception):
    """The list of problems is full: stop looking (see :data:`MAX_PROBLEMS`)."""


class ProblemList(list[Found]):
    """Problems found so far; adding one past :data:`MAX_PROBLEMS` raises :class:`Enough`."""

    def __init__(self, items: Iterable[Found] = ()) -> None:
        super().__init__()
        self.full = False
        for item in items:
            self.append(item)

    def append(self, item: Found) -> None:
        if len(self) >= MAX_PROBLEMS:
            self.full = True
            raise Enough
        super().append(item)

    def extend(self, items: Iterable[Found]) -> None:
        for item in items:
            self.append(item)


def carry(found: list[Found], problems: ProblemList) -> None:
    """Start ``problems`` with those found while parsing (remembering if that list was full)."""
    problems.extend(found)
    problems.full = isinstance(found, ProblemList) and found.full


MORE_PROBLEMS = (
    "there are more problems than the {count} listed above: paysplit stopped looking; "
    "fix these and load the ledger again"
)


_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")


def path_text(prefix: str, loc: Loc) -> str:
    """``("accounts", 0, "charges", 3, "amount")`` -> ``accounts[0].charges[3].amount``.

    A key that is not a plain name (a space, a dot, empty, ...) is quoted: ``practice["a b"]``.
    """
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(part):
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _position(
    doc: object, loc: Loc, keys: dict[int, dict[str, int]] | None = None
) -> tuple[int, ...]:
    """Where ``loc`` is in the document as written: the order problems are reported in.

    ``keys`` caches each object's key positions (an object may have millions of keys).
    """
    key: list[int] = []
    node = doc
    for part in loc:
        if isinstance(node, Mapping) and isinstance(part, str):
            if part in node:
                if keys is None:
                    key.append(list(node).index(part))
                else:
                    places = keys.get(id(node))
                    if places is None:
                        places = keys[id(node)] = {k: i for i, k in enumerate(node)}
                    key.append(places[part])
                node = node[part]
            else:  # a missing field sorts after the fields that are there
                key.append(len(node))
                node = None
        elif isinstance(node, list | tuple) and isinstance(part, int) and 0 <= part < len(node):
            key.append(part)
            node = node[part]
        else:
            key.append(0)
            node = None
    return tuple(key)


def printable(text: str) -> str:
    """Text a terminal and a JSON report can carry, on one line: control and format
    characters (a newline in a key, an ANSI escape, a right-to-left override) and lone
    surrogates are shown as escapes such as ``\\n`` or ``\\u202e``."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else json.dumps(c, ensure_ascii=True)[1:-1] for c in text)


def ordered(doc: object, found: list[Found], prefix: str) -> list[Problem]:
    keys: dict[int, dict[str, int]] = {}
    ranked = sorted(
        enumerate(found), key=lambda item: (_position(doc, item[1].where, keys), item[0])
    )
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for _, item in ranked:
        path = printable(path_text(prefix, item.where if item.shown_at is None else item.shown_at))
        message = printable(item.message)
        if (path, message) not in seen:
            seen.add((path, message))
            problems.append(Problem(path, message))
    if isinstance(found, ProblemList) and found.full:
        problems.append(Problem(prefix, MORE_PROBLEMS.format(count=len(problems))))
    return problems


# --------------------------------------------------------------------------
# Values as a message shows them
# --------------------------------------------------------------------------
def shown_value(value: object) -> str:
    """A value as the user wrote it, short."""
    if isinstance(value, JsonNumber):
        text = str(value)
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, Mapping):
        return "an object"
    elif isinstance(value, list | tuple):
        return "a list"
    else:
        text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def kind_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, JsonNumber | int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__
