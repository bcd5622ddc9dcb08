"""JSON text to Python values, exactly, and within limits.

A ledger's JSON is parsed without floats (numbers keep their exact text as
:class:`~paysplit.money.JsonNumber`, integers become :class:`~paysplit.money.JsonInt`),
without NaN or Infinity, without duplicate keys or lone surrogates passing silently, and
without a traceback on absurd nesting: each of those is a problem at its path. Text that
is not JSON at all is one :class:`Unreadable` problem.

Hostile sizes are refused before anything is parsed: a document (or a JSON Lines line)
larger than ``PAYSPLIT_MAX_LEDGER_BYTES`` (:func:`max_ledger_bytes`) is never read whole.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from paysplit.errors import LedgerError, Problem, UsageError
from paysplit.ledger_problems import Enough, Found, Loc, ProblemList
from paysplit.money import JsonInt, JsonNumber

LEDGER_FORMATS: dict[str, str] = {
    "json": "the paysplit-ledger/1 JSON document (the default)",
    "jsonl": "JSON Lines: a header line, then one account per line",
}
"""Ledger formats paysplit reads and writes without a plugin, by ``--ledger-format`` name."""


# --------------------------------------------------------------------------
# Limits on what one load may cost
# --------------------------------------------------------------------------
MAX_LEDGER_BYTES_ENV = "PAYSPLIT_MAX_LEDGER_BYTES"
DEFAULT_MAX_LEDGER_BYTES = 32 * 1024 * 1024
"""The largest ledger document read whole (and the longest JSON Lines line).

Loading holds the whole document in memory, about twenty times its size once
parsed and validated; 32 MB is a practice of some 100,000 records. Bigger
ledgers are JSON Lines, which ``paysplit batch`` streams an account at a time.
"""
_SIZE = re.compile(r"\s*([0-9]+)\s*([kmg]?)i?b?\s*", re.IGNORECASE)


def max_ledger_bytes() -> int:
    """The size limit in force: ``PAYSPLIT_MAX_LEDGER_BYTES`` (bytes, or with K, M or G), else
    :data:`DEFAULT_MAX_LEDGER_BYTES`."""
    raw = os.environ.get(MAX_LEDGER_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_LEDGER_BYTES
    match = _SIZE.fullmatch(raw)
    if match is None or int(match.group(1)) <= 0:
        raise UsageError(
            f"{MAX_LEDGER_BYTES_ENV}={raw!r} is not a size: write a number of bytes, "
            "or one with K, M or G (for example 64M)"
        )
    unit = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    return int(match.group(1)) * unit


def _megabytes(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{size / 1024:.1f} KB" if size >= 1024 else f"{size} bytes"


def too_large(size: int | None, limit: int, what: str = "the document") -> str:
    """Why a document is refused for its size (``size`` None: it could not be known)."""
    how_big = f"is {_megabytes(size)}, more than" if size is not None else "is larger than"
    return (
        f"{what} {how_big} the {_megabytes(limit)} paysplit reads whole "
        f"(set {MAX_LEDGER_BYTES_ENV} to raise the limit); for a ledger this large use JSON "
        "Lines (a header line, then one account per line) and `paysplit batch`, which reads "
        "one account at a time"
    )


# --------------------------------------------------------------------------
# JSON text -> Python values, exactly
# --------------------------------------------------------------------------
_NON_FINITE = {"NaN", "Infinity", "-Infinity"}


class _Hooks:
    """The json module's hooks for one parse; remembers what needs a path afterwards."""

    def __init__(self) -> None:
        self.duplicates: list[tuple[dict[str, Any], list[str]]] = []
        self.non_finite = False
        self.surrogates = False

    def pairs(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            repeated: list[str] = []
            for key, _ in pairs:
                if key in seen and key not in repeated:
                    repeated.append(key)
                seen.add(key)
            self.duplicates.append((obj, repeated))
        return obj

    def constant(self, text: str) -> JsonNumber:
        # Kept as text so the problem can be reported at its path, not just "somewhere".
        self.non_finite = True
        return JsonNumber(text)

    @staticmethod
    def integer(text: str) -> JsonInt | JsonNumber:
        # A JSON 100 is one hundred currency units, while a plain Python int in
        # a model is cents (see paysplit.money.parse_amount).
        try:
            return JsonInt(text)
        except ValueError:
            # Thousands of digits (Python refuses to convert them): kept as their text, so an
            # amount is reported as too large at its path and ``extra`` is written back as read.
            return JsonNumber(text)


def _walk(doc: object) -> Iterator[tuple[Loc, object]]:
    """Every value of a parsed document with its place, without recursion."""
    pending: list[tuple[Loc, object]] = [((), doc)]
    while pending:
        loc, node = pending.pop()
        yield loc, node
        if isinstance(node, dict):
            pending.extend(((*loc, k), v) for k, v in reversed(list(node.items())))
        elif isinstance(node, list):
            pending.extend(((*loc, i), v) for i, v in reversed(list(enumerate(node))))


_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _surrogate_problem(text: str) -> str:
    found = _SURROGATE.search(text)
    code = ord(found.group()) if found is not None else 0xD800
    return (
        f"holds \\u{code:04x}, half of a UTF-16 surrogate pair, which is not a character "
        "(text cannot be written back as UTF-8); fix the text in the system that exported it"
    )


def _json_problems(doc: object, hooks: _Hooks) -> list[Found]:
    """Duplicate keys, NaN/Infinity and lone surrogates, now that the document exists to find
    their paths (at most :data:`~paysplit.ledger_problems.MAX_PROBLEMS` of them)."""
    if not hooks.duplicates and not hooks.non_finite and not hooks.surrogates:
        return []
    repeated = {id(obj): keys for obj, keys in hooks.duplicates}
    found = ProblemList()
    try:
        for loc, node in _walk(doc):
            if isinstance(node, dict):
                for key in repeated.get(id(node), ()):
                    found.append(Found((*loc, key), f'"{key}" is given twice in this object'))
                if hooks.surrogates:
                    for key in node:
                        if _SURROGATE.search(key):
                            found.append(Found((*loc, key), "the key " + _surrogate_problem(key)))
            elif isinstance(node, JsonNumber) and node in _NON_FINITE:
                found.append(
                    Found(
                        loc, f'{node} is not a number a ledger can hold; write amounts like "12.50"'
                    )
                )
            elif hooks.surrogates and isinstance(node, str) and _SURROGATE.search(node):
                found.append(Found(loc, "the text " + _surrogate_problem(node)))
    except Enough:
        pass
    return found


def parse_json(
    text: str | bytes, where: str = "the document ", *, one_line: bool = False
) -> tuple[object, list[Found]]:
    """Parse JSON text exactly; raise ``Unreadable`` with one problem when it is not JSON."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as error:
            raise Unreadable(
                f"{where}is not UTF-8 text (byte {error.start + 1} cannot be read)"
            ) from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise Unreadable(f"{where}is empty")
    hooks = _Hooks()
    hooks.surrogates = bool(_SURROGATE_ESCAPE.search(text) or _SURROGATE.search(text))
    try:
        doc = json.loads(
            text,
            object_pairs_hook=hooks.pairs,
            parse_float=JsonNumber,
            parse_int=hooks.integer,
            parse_constant=hooks.constant,
        )
    except json.JSONDecodeError as error:
        detail = error.msg[0].lower() + error.msg[1:]
        place = (
            f"column {error.colno}" if one_line else f"line {error.lineno}, column {error.colno}"
        )
        raise Unreadable(f"{where}is not valid JSON: {detail} ({place})") from None
    except RecursionError:
        raise Unreadable(
            f"{where}is nested too deeply to be a ledger (lists or objects inside each other "
            "hundreds of levels deep)"
        ) from None
    return doc, _json_problems(doc, hooks)


class Unreadable(Exception):
    """Text that is not a JSON document at all: one problem, no path."""


# --------------------------------------------------------------------------
# Reading files within the limit
# --------------------------------------------------------------------------
def read_limited(path: str | Path, source: str) -> bytes:
    """A file's bytes, refused (before they are read) past :func:`max_ledger_bytes`."""
    limit = max_ledger_bytes()
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size > limit:
                raise LedgerError(source, [Problem("", too_large(size, limit, "the file"))])
            # At most one byte past the limit, whatever the file claims (a device, a growing file).
            data = stream.read(limit + 1)
    except FileNotFoundError:
        raise LedgerError(source, [Problem("", "no such file")]) from None
    except IsADirectoryError:
        raise LedgerError(source, [Problem("", "is a folder, not a ledger file")]) from None
    except OSError as error:
        raise LedgerError(source, [Problem("", f"cannot be read: {error.strerror}")]) from None
    if len(data) > limit:  # a device or a growing file: how big it is cannot be known
        raise LedgerError(source, [Problem("", too_large(None, limit, "the file"))])
    return data


def read_line(stream: IO[bytes], limit: int) -> tuple[bytes, int]:
    """The next line and its length; past ``limit`` bytes the rest of the line is skipped
    unread (the bytes returned are then only its start)."""
    line = stream.readline(limit + 1)
    length = len(line)
    if length > limit and not line.endswith(b"\n"):
        while True:
            more = stream.readline(1024 * 1024)
            length += len(more)
            if not more or more.endswith(b"\n"):
                break
    return line, length
