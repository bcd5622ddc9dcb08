"""Reading and writing ledger documents: every problem at once, never a float, never half a file.

This module owns the way a ledger gets from bytes to :class:`~paysplit.ledger.Ledger`
and back (``docs/ledger.md``):

* JSON is parsed without floats (numbers keep their exact text as
  :class:`~paysplit.money.JsonNumber`), without NaN or Infinity, without
  duplicate keys, and without a traceback on absurd nesting;
* the shape is checked in one pydantic call, and pydantic's errors are turned
  into sentences a practice implementer understands;
* a cheap linear pass over the raw document checks what pydantic cannot:
  unique ids, references that resolve inside the right account, and the
  rules of the document (a refund names the payment it refunds, a positive
  unattached adjustment belongs in the charges, ...). It runs even when the
  shape is wrong elsewhere, so one load reports every problem, in document
  order, each with its JSON path;
* JSON Lines ledgers (a header line, then one account per line) are streamed
  line by line, a bad line costing only itself;
* hostile input is bounded: a document (or a JSON Lines line) larger than
  ``PAYSPLIT_MAX_LEDGER_BYTES`` is refused before it is parsed, pydantic sees
  one record at a time, and a load lists at most :data:`MAX_PROBLEMS`
  problems, so a mangled file of millions of records cannot exhaust memory;
* writing is atomic: a temporary file in the same folder, fsync, rename,
  fsync of the folder.

Invariants of a ledger that loads live in :mod:`paysplit.invariants`.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import os
import re
import secrets
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeAlias

from pydantic import BaseModel, PlainSerializer, TypeAdapter, ValidationError

from paysplit.errors import LedgerError, PaysplitError, Problem, UsageError
from paysplit.ledger import Account, Ledger, LedgerHeader
from paysplit.money import JsonInt, JsonNumber, MoneyError, format_cents, parse_amount

__all__ = [
    "DEFAULT_MAX_LEDGER_BYTES",
    "LEDGER_FORMATS",
    "MAX_LEDGER_BYTES_ENV",
    "MAX_PROBLEMS",
    "LedgerWriteError",
    "account_from_document",
    "account_from_line",
    "dump_jsonl_line",
    "dump_ledger",
    "iter_jsonl",
    "ledger_from_document",
    "load_jsonl_ledger",
    "load_ledger",
    "max_ledger_bytes",
    "parse_ledger_text",
    "read_ledger_for_cli",
    "to_document",
    "write_jsonl",
    "write_ledger",
]

Loc: TypeAlias = tuple[str | int, ...]
"""A place in a document: keys and list indices from the root."""

LEDGER_FORMATS: dict[str, str] = {
    "json": "the paysplit-ledger/1 JSON document (the default)",
    "jsonl": "JSON Lines: a header line, then one account per line",
}
"""Ledger formats paysplit reads without a plugin, by ``--ledger-format`` name."""


class LedgerWriteError(PaysplitError):
    """A ledger could not be written; the file that was there is unchanged."""


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
MAX_PROBLEMS = 1000
"""The most problems one load lists. Past it loading stops: a mangled file can hold millions."""

_SIZE = re.compile(r"\s*(\d+)\s*([kmg]?)i?b?\s*", re.IGNORECASE)


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


def _too_large(size: int | None, limit: int, what: str = "the document") -> str:
    """Why a document is refused for its size (``size`` None: it could not be known)."""
    how_big = f"is {_megabytes(size)}, more than" if size is not None else "is larger than"
    return (
        f"{what} {how_big} the {_megabytes(limit)} paysplit reads whole "
        f"(set {MAX_LEDGER_BYTES_ENV} to raise the limit); for a ledger this large use JSON "
        "Lines (a header line, then one account per line) and `paysplit batch`, which reads "
        "one account at a time"
    )


# --------------------------------------------------------------------------
# Problems found, before they become Problem(path, message)
# --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Found:
    where: Loc
    """Where the problem sorts (may name a key that is missing)."""
    message: str
    shown_at: Loc | None = None
    """The path printed, when it is not ``where`` (a missing field is shown on its record)."""


class _Enough(Exception):
    """The list of problems is full: stop looking (see :data:`MAX_PROBLEMS`)."""


class _Problems(list[_Found]):
    """Problems found so far; adding one past :data:`MAX_PROBLEMS` raises :class:`_Enough`."""

    def __init__(self, items: Iterable[_Found] = ()) -> None:
        super().__init__()
        self.full = False
        for item in items:
            self.append(item)

    def append(self, item: _Found) -> None:
        if len(self) >= MAX_PROBLEMS:
            self.full = True
            raise _Enough
        super().append(item)

    def extend(self, items: Iterable[_Found]) -> None:
        for item in items:
            self.append(item)


def _carry(found: list[_Found], problems: _Problems) -> None:
    """Start ``problems`` with those found while parsing (remembering if that list was full)."""
    problems.extend(found)
    problems.full = isinstance(found, _Problems) and found.full


_MORE = (
    "there are more problems than the {count} listed above: paysplit stopped looking; "
    "fix these and load the ledger again"
)


_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")


def _path(prefix: str, loc: Loc) -> str:
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


def _printable(text: str) -> str:
    """Text a terminal and a JSON report can carry, on one line: control and format
    characters (a newline in a key, an ANSI escape, a right-to-left override) and lone
    surrogates are shown as escapes such as ``\\n`` or ``\\u202e``."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else json.dumps(c, ensure_ascii=True)[1:-1] for c in text)


def _ordered(doc: object, found: list[_Found], prefix: str) -> list[Problem]:
    keys: dict[int, dict[str, int]] = {}
    ranked = sorted(
        enumerate(found), key=lambda item: (_position(doc, item[1].where, keys), item[0])
    )
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for _, item in ranked:
        path = _printable(_path(prefix, item.where if item.shown_at is None else item.shown_at))
        message = _printable(item.message)
        if (path, message) not in seen:
            seen.add((path, message))
            problems.append(Problem(path, message))
    if isinstance(found, _Problems) and found.full:
        problems.append(Problem(prefix, _MORE.format(count=len(problems))))
    return problems


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


def _json_problems(doc: object, hooks: _Hooks) -> list[_Found]:
    """Duplicate keys, NaN/Infinity and lone surrogates, now that the document exists to find
    their paths (at most :data:`MAX_PROBLEMS` of them)."""
    if not hooks.duplicates and not hooks.non_finite and not hooks.surrogates:
        return []
    repeated = {id(obj): keys for obj, keys in hooks.duplicates}
    found = _Problems()
    try:
        for loc, node in _walk(doc):
            if isinstance(node, dict):
                for key in repeated.get(id(node), ()):
                    found.append(_Found((*loc, key), f'"{key}" is given twice in this object'))
                if hooks.surrogates:
                    for key in node:
                        if _SURROGATE.search(key):
                            found.append(_Found((*loc, key), "the key " + _surrogate_problem(key)))
            elif isinstance(node, JsonNumber) and node in _NON_FINITE:
                found.append(
                    _Found(
                        loc, f'{node} is not a number a ledger can hold; write amounts like "12.50"'
                    )
                )
            elif hooks.surrogates and isinstance(node, str) and _SURROGATE.search(node):
                found.append(_Found(loc, "the text " + _surrogate_problem(node)))
    except _Enough:
        pass
    return found


def _parse_json(
    text: str | bytes, where: str = "the document ", *, one_line: bool = False
) -> tuple[object, list[_Found]]:
    """Parse JSON text exactly; raise ``_Unreadable`` with one problem when it is not JSON."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as error:
            raise _Unreadable(
                f"{where}is not UTF-8 text (byte {error.start + 1} cannot be read)"
            ) from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise _Unreadable(f"{where}is empty")
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
        raise _Unreadable(f"{where}is not valid JSON: {detail} ({place})") from None
    except RecursionError:
        raise _Unreadable(
            f"{where}is nested too deeply to be a ledger (lists or objects inside each other "
            "hundreds of levels deep)"
        ) from None
    return doc, _json_problems(doc, hooks)


class _Unreadable(Exception):
    """Text that is not a JSON document at all: one problem, no path."""


# --------------------------------------------------------------------------
# pydantic's errors -> sentences
# --------------------------------------------------------------------------
def _shown(value: object) -> str:
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


def _kind(value: object) -> str:
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


def _record_type(annotation: object) -> type[BaseModel] | None:
    """The record model inside an annotation such as ``tuple[Charge, ...] | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (tuple, list, typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _record_type(arg)
            if found is not None:
                return found
    return None


@functools.cache
def _model_at(root: type[BaseModel], keys: tuple[str, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = root
    for key in keys:
        if model is None or key not in model.model_fields:
            return None
        model = _record_type(model.model_fields[key].annotation)
    return model


def _field_name(loc: Loc) -> str:
    return next((str(part) for part in reversed(loc) if isinstance(part, str)), "value")


def _schema_found(
    error: ValidationError, root: type[BaseModel], skip: set[Loc], prefix: Loc = ()
) -> list[_Found]:
    """pydantic's errors for ``root`` (validated at ``prefix`` of the document) as problems."""
    found: list[_Found] = []
    for item in error.errors(include_url=False, include_context=True):
        own: Loc = tuple(item["loc"])
        loc: Loc = (*prefix, *own)
        if loc in skip:
            continue
        kind = item["type"]
        value = item.get("input")
        field = _field_name(loc)
        if kind == "missing":
            found.append(_Found(loc, f'"{field}" is required', shown_at=loc[:-1]))
        elif kind == "extra_forbidden":
            found.append(_Found(loc, _unknown_field(root, own)))
        else:
            found.append(_Found(loc, _sentence(kind, field, value, item)))
    return found


# --------------------------------------------------------------------------
# Validation one record at a time
# --------------------------------------------------------------------------
M = typing.TypeVar("M", bound=BaseModel)

_CHUNK = 256
"""The most items of a list of ids (or entries of a mapping) pydantic checks in one call."""


@dataclass(frozen=True)
class _Shape:
    """How a field is validated: a record, a list of records, or a list/mapping of plain values."""

    kind: typing.Literal["record", "records", "values"]
    model: type[BaseModel] | None = None
    adapter: TypeAdapter[Any] | None = None
    container: type | None = None
    """For values: the JSON container checked in chunks (list, or dict for a mapping)."""


@functools.cache
def _shape(model: type[BaseModel], name: str) -> _Shape | None:
    annotation = model.model_fields[name].annotation
    record = _record_type(annotation)
    if record is not None:
        many = any(typing.get_origin(arm) is tuple for arm in _arms(annotation))
        return _Shape("records" if many else "record", model=record)
    for arm in _arms(annotation):
        origin = typing.get_origin(arm)
        if origin in (tuple, dict):
            container = dict if origin is dict else list
            adapter: TypeAdapter[Any] = TypeAdapter(typing.cast(Any, arm))
            return _Shape("values", adapter=adapter, container=container)
    return None


@functools.cache
def _fields(model: type[BaseModel]) -> tuple[frozenset[str], tuple[tuple[str, _Shape], ...]]:
    """A model's field names, and those that hold records or lists of values."""
    special = ((name, _shape(model, name)) for name in model.model_fields)
    return frozenset(model.model_fields), tuple((n, s) for n, s in special if s is not None)


def _bounded(model: type[BaseModel], data: Mapping[str, Any]) -> bool:
    """True when one pydantic call on ``data`` makes at most a record's worth of errors: no
    unknown keys, no list of records, no long list of ids (the common case, checked fast)."""
    names, special = _fields(model)
    if not data.keys() <= names:
        return False
    for name, shape in special:
        value = data.get(name)
        if not value:
            continue
        if shape.kind == "records" and isinstance(value, list | tuple):
            return False
        if shape.kind == "record" and isinstance(value, Mapping):
            assert shape.model is not None
            if not _bounded(shape.model, value):
                return False
        elif (
            shape.kind == "values"
            and isinstance(value, list | tuple | Mapping)
            and len(value) > _CHUNK
        ):
            return False
    return True


def _arms(annotation: object) -> tuple[object, ...]:
    """The arms of ``X | None`` (or the annotation itself)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _validated(
    model: type[M], data: object, loc: Loc, found: _Problems, skip: set[Loc]
) -> M | None:
    """``model.model_validate(data)``, with every record inside it validated on its own.

    pydantic then never sees more than one record's own fields (or :data:`_CHUNK` ids) at
    once, so a mangled document cannot make millions of errors in one call, and
    :class:`_Problems` stops the whole load at :data:`MAX_PROBLEMS`. Problems are the
    same, at the same paths, as validating the document in one call.
    """
    if not isinstance(data, Mapping) or _bounded(model, data):
        return _one_call(model, data, loc, found, skip)
    own: dict[str, Any] = {}
    failed = False
    for key, value in data.items():
        at: Loc = (*loc, key)
        if key not in model.model_fields:
            if at not in skip:
                found.append(_Found(at, _unknown_field(model, (key,))))
            failed = True
            continue
        shape = _shape(model, key)
        if shape is None:
            own[key] = value
        elif shape.kind == "record" and isinstance(value, Mapping):
            assert shape.model is not None
            record = _validated(shape.model, value, at, found, skip)
            failed = failed or record is None
            own[key] = record if record is not None else shape.model.model_construct()
        elif shape.kind == "records" and isinstance(value, list | tuple):
            assert shape.model is not None
            records = [
                _validated(shape.model, item, (*at, index), found, skip)
                for index, item in enumerate(value)
            ]
            kept = [r for r in records if r is not None]
            failed = failed or len(kept) != len(records)
            own[key] = tuple(kept)
        elif shape.kind == "values" and isinstance(value, _CONTAINERS[shape.container]):
            assert shape.adapter is not None
            checked = _values(shape.adapter, value, at, found, skip)
            failed = failed or checked is None
            own[key] = checked if checked is not None else type(value)()
        else:
            own[key] = value
    result = _one_call(model, own, loc, found, skip)
    return None if failed else result


_CONTAINERS: dict[type | None, Any] = {list: list | tuple, dict: Mapping, None: ()}


def _values(
    adapter: TypeAdapter[Any],
    value: list[Any] | tuple[Any, ...] | Mapping[str, Any],
    at: Loc,
    found: _Problems,
    skip: set[Loc],
) -> Any:
    """A list of ids or a mapping of plain values, checked :data:`_CHUNK` items at a time."""
    if isinstance(value, Mapping):
        items = list(value.items())
        chunks: Iterable[Any] = (
            dict(items[start : start + _CHUNK]) for start in range(0, len(items), _CHUNK)
        )
    else:
        chunks = (value[start : start + _CHUNK] for start in range(0, len(value), _CHUNK))
    parts: list[Any] = []
    failed = False
    for start, chunk in zip(range(0, len(value), _CHUNK), chunks, strict=True):
        try:
            parts.append(adapter.validate_python(chunk))
        except ValidationError as error:
            failed = True
            for item in _schema_found(error, BaseModel, skip, at):
                where = item.where
                if not isinstance(value, Mapping) and len(where) > len(at):
                    index = where[len(at)]
                    if isinstance(index, int):  # the chunk's index -> the list's
                        where = (*at, index + start, *where[len(at) + 1 :])
                found.append(_Found(where, item.message, item.shown_at))
    if failed:
        return None
    if isinstance(value, Mapping):
        return {key: item for part in parts for key, item in part.items()}
    return tuple(item for part in parts for item in part)


def _one_call(model: type[M], data: object, loc: Loc, found: _Problems, skip: set[Loc]) -> M | None:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        found.extend(_schema_found(error, model, skip, loc))
        return None


def _unknown_field(root: type[BaseModel], loc: Loc) -> str:
    name = str(loc[-1])
    model = _model_at(root, tuple(p for p in loc[:-1] if isinstance(p, str)))
    known = [f for f in model.model_fields if f != "extra"] if model else []
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f'unknown field "{name}" (did you mean "{close[0]}"?)'
    return f'unknown field "{name}" (practice-system data goes under "extra")'


_DATE_KINDS = {
    "date_type",
    "date_parsing",
    "date_from_datetime_parsing",
    "date_from_datetime_inexact",
}
_TIME_KINDS = {"datetime_type", "datetime_parsing", "datetime_from_date_parsing"}


def _sentence(kind: str, field: str, value: object, item: Any) -> str:
    """One pydantic error as a sentence about the practice's data."""
    if kind == "amount" and isinstance(value, Mapping | list | tuple):
        return f'{_kind(value)} is not an amount; write an amount such as "12.50"'
    if kind in {"amount", "extra_type", "extra_value", "extra_depth"}:
        return str(item["msg"])
    if kind == "day_format":
        return f"{_shown(value)} is not a date; write dates as YYYY-MM-DD"
    if kind == "moment_format":
        return f"{_shown(value)} is not a date and time; write times as YYYY-MM-DDTHH:MM:SS"
    if kind in _DATE_KINDS:
        reason = item.get("ctx", {}).get("error")
        return f"{_shown(value)} is not a valid date" + (f" ({reason})" if reason else "")
    if kind in _TIME_KINDS:
        return f"{_shown(value)} is not a valid date and time; write YYYY-MM-DDTHH:MM:SS"
    if kind == "timezone_naive":
        return f"{_shown(value)} has a time zone; ledger times are local, written without one"
    if kind == "string_type":
        if value is None:
            return f'"{field}" cannot be null here'
        if isinstance(value, JsonNumber | int | float) and not isinstance(value, bool):
            return f"{_shown(value)} is a number; write it as text in quotes"
        return f'"{field}" must be text, not {_kind(value)}'
    if kind == "bool_type":
        return f'"{field}" must be true or false, not {_shown(value)}'
    if kind == "literal_error":
        expected = str(item.get("ctx", {}).get("expected", "")).replace("'", '"')
        return f'"{field}" must be {expected}, not {_shown(value)}'
    if kind in {"tuple_type", "list_type"}:
        return f'"{field}" must be a list, not {_kind(value)}'
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        if value is None:
            return f'"{field}" cannot be null here'
        return f"this must be an object, not {_kind(value)}"
    message = str(item["msg"])
    return f"{_shown(value)}: {message[0].lower()}{message[1:]}"


# --------------------------------------------------------------------------
# The linear pass: ids, references and the rules of the document
# --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Practice:
    """What accounts may refer to outside themselves: the header's providers and offices.

    ``None`` when the list itself is unusable (already reported): references to it are
    then not checked, rather than each reported as dangling.
    """

    providers: tuple[str, ...] | None
    offices: tuple[str, ...] | None
    provider_set: frozenset[str]
    office_set: frozenset[str]

    @classmethod
    def of(cls, providers: Iterable[str] | None, offices: Iterable[str] | None) -> _Practice:
        p = None if providers is None else tuple(providers)
        o = None if offices is None else tuple(offices)
        return cls(p, o, frozenset(p or ()), frozenset(o or ()))


def _id(value: str) -> str:
    """An id as a message shows it: as written, or in quotes when it would not read as one
    (empty, spaces around it, characters that do not print)."""
    if value and value.strip() == value and value.isprintable():
        return value
    return json.dumps(value, ensure_ascii=False)


def _listed(ids: tuple[str, ...]) -> str:
    if not ids:
        return "none are listed"
    shown = ", ".join(ids[:8])
    return shown + (", ..." if len(ids) > 8 else "")


class _Ids:
    """Ids seen so far, by kind, with where each was first used (unique across the document)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.first: dict[str, dict[str, Loc]] = {}

    def add(self, kind: str, value: object, loc: Loc, found: list[_Found]) -> None:
        if not isinstance(value, str):
            return
        seen = self.first.setdefault(kind, {})
        where = seen.setdefault(value, loc)
        if where is not loc:  # the path is only spelled out for a duplicate
            found.append(
                _Found(loc, f"{_id(value)} is used twice (also at {_path(self.prefix, where)})")
            )


def _records(container: Mapping[str, Any], key: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """The records of a list field that are objects; anything else was reported by the schema."""
    items = container.get(key)
    if isinstance(items, list | tuple):
        for index, record in enumerate(items):
            if isinstance(record, Mapping):
                yield index, record


def _amount_of(record: Mapping[str, Any]) -> int | None:
    try:
        return parse_amount(record.get("amount"))
    except MoneyError:
        return None  # already reported by the schema check


def _check_header(doc: Mapping[str, Any], ids: _Ids, found: list[_Found]) -> _Practice:
    lists: dict[str, list[str] | None] = {}
    for key, kind in (("providers", "provider"), ("offices", "office")):
        raw = doc.get(key, [] if key == "offices" else None)
        if not isinstance(raw, list | tuple):
            lists[key] = None
            continue
        listed: list[str] = []
        for index, record in _records(doc, key):
            value = record.get("id")
            ids.add(kind, value, (key, index, "id"), found)
            if isinstance(value, str):
                listed.append(value)
        lists[key] = listed
    return _Practice.of(lists["providers"], lists["offices"])


_ACCOUNT_LISTS = (
    ("patients", "patient"),
    ("appointments", "appointment"),
    ("charges", "charge"),
    ("adjustments", "adjustment"),
    ("payments", "payment"),
    ("plans", "plan"),
    ("splits", "split"),
)


class _AccountCheck:
    """References and document rules inside one account, on the raw document."""

    def __init__(
        self, account: Mapping[str, Any], at: Loc, practice: _Practice, found: list[_Found]
    ) -> None:
        self.account = account
        self.at = at
        self.practice = practice
        self.found = found
        name = account.get("id")
        self.name = f"account {_id(name)}" if isinstance(name, str) else "this account"
        self.local: dict[str, dict[str, Mapping[str, Any]]] = {k: {} for _, k in _ACCOUNT_LISTS}
        self.plan_of_installment: dict[str, Mapping[str, Any]] = {}

    def collect(self, ids: _Ids) -> None:
        ids.add("account", self.account.get("id"), (*self.at, "id"), self.found)
        for key, kind in _ACCOUNT_LISTS:
            table = self.local[kind]
            for index, record in _records(self.account, key):
                value = record.get("id")
                ids.add(kind, value, (*self.at, key, index, "id"), self.found)
                if isinstance(value, str):
                    table.setdefault(value, record)
        for p_index, plan in _records(self.account, "plans"):
            for i_index, installment in _records(plan, "installments"):
                value = installment.get("id")
                loc = (*self.at, "plans", p_index, "installments", i_index, "id")
                ids.add("installment", value, loc, self.found)
                if isinstance(value, str):
                    self.plan_of_installment.setdefault(value, plan)

    # -- helpers -------------------------------------------------------------
    def problem(self, loc: Loc, message: str, shown_at: Loc | None = None) -> None:
        self.found.append(_Found(loc, message, shown_at))

    def local_ref(self, record: Mapping[str, Any], loc: Loc, key: str, kind: str) -> str | None:
        """Check that ``record[key]`` names a ``kind`` of this account; return it when it does."""
        value = record.get(key)
        if not isinstance(value, str):
            return None
        if value not in self.local[kind]:
            article = "an" if kind[0] in "aeiou" else "a"
            self.problem((*loc, key), f"{_id(value)} is not {article} {kind} of {self.name}")
            return None
        return value

    def practice_ref(self, record: Mapping[str, Any], loc: Loc, key: str) -> None:
        value = record.get(key)
        if not isinstance(value, str):
            return
        practice = self.practice
        if key == "provider":
            if practice.providers is not None and value not in practice.provider_set:
                listed = _listed(practice.providers)
                self.problem(
                    (*loc, key), f"{_id(value)} is not one of the practice's providers ({listed})"
                )
        elif practice.offices is not None and value not in practice.office_set:
            listed = _listed(practice.offices)
            self.problem(
                (*loc, key), f"{_id(value)} is not one of the practice's offices ({listed})"
            )

    # -- the records ---------------------------------------------------------
    def check(self) -> None:
        acc = self.account
        for index, patient in _records(acc, "patients"):
            self.patient(patient, (*self.at, "patients", index))
        for index, appointment in _records(acc, "appointments"):
            loc = (*self.at, "appointments", index)
            self.local_ref(appointment, loc, "patient", "patient")
            self.practice_ref(appointment, loc, "provider")
            self.practice_ref(appointment, loc, "office")
        for index, charge in _records(acc, "charges"):
            loc = (*self.at, "charges", index)
            self.local_ref(charge, loc, "patient", "patient")
            self.practice_ref(charge, loc, "provider")
            self.practice_ref(charge, loc, "office")
            self.local_ref(charge, loc, "appointment", "appointment")
        for index, adjustment in _records(acc, "adjustments"):
            self.adjustment(adjustment, (*self.at, "adjustments", index))
        for index, payment in _records(acc, "payments"):
            self.payment(payment, (*self.at, "payments", index))
        for index, plan in _records(acc, "plans"):
            loc = (*self.at, "plans", index)
            self.local_ref(plan, loc, "patient", "patient")
            charges = plan.get("charges")
            if isinstance(charges, list | tuple):
                for c_index, charge_id in enumerate(charges):
                    if isinstance(charge_id, str) and charge_id not in self.local["charge"]:
                        self.problem(
                            (*loc, "charges", c_index),
                            f"{_id(charge_id)} is not a charge of {self.name}",
                        )
        for index, split in _records(acc, "splits"):
            self.split(split, (*self.at, "splits", index))

    def patient(self, patient: Mapping[str, Any], loc: Loc) -> None:
        guarantor = patient.get("guarantor")
        if not isinstance(guarantor, str):
            return
        if guarantor == patient.get("id"):
            self.problem((*loc, "guarantor"), "a patient cannot be their own guarantor")
        elif guarantor not in self.local["patient"]:
            self.problem(
                (*loc, "guarantor"),
                f"{_id(guarantor)} is not a patient of {self.name} "
                "(a guarantor is a patient of the same account)",
            )

    def adjustment(self, adjustment: Mapping[str, Any], loc: Loc) -> None:
        self.local_ref(adjustment, loc, "patient", "patient")
        self.practice_ref(adjustment, loc, "provider")
        self.practice_ref(adjustment, loc, "office")
        self.local_ref(adjustment, loc, "charge", "charge")
        amount = _amount_of(adjustment)
        if adjustment.get("charge") is None and amount is not None and amount >= 0:
            if amount > 0:
                message = (
                    f"an unattached adjustment of {format_cents(amount)} is production, not a "
                    'credit: enter it as a charge of kind "adjustment" (only a negative '
                    "adjustment may stay unattached)"
                )
            else:
                message = (
                    "an unattached adjustment of 0.00 changes nothing: attach it to a charge "
                    "or remove it"
                )
            self.problem((*loc, "amount"), message)

    def payment(self, payment: Mapping[str, Any], loc: Loc) -> None:
        self.local_ref(payment, loc, "patient", "patient")
        self.practice_ref(payment, loc, "provider")
        self.practice_ref(payment, loc, "office")
        self.local_ref(payment, loc, "appointment", "appointment")
        credit = payment.get("credit")
        if isinstance(credit, Mapping):
            self.practice_ref(credit, (*loc, "credit"), "provider")
            self.practice_ref(credit, (*loc, "credit"), "office")
        amount = _amount_of(payment)
        kind = payment.get("type")
        refunds = payment.get("refunds")
        if kind == "refund":
            if amount is not None and amount >= 0:
                self.problem(
                    (*loc, "amount"),
                    f"a refund has a negative amount (the money paid back), not "
                    f"{format_cents(amount)}",
                )
            if refunds is None:
                self.problem(
                    (*loc, "refunds"), 'a refund names the payment it refunds in "refunds"'
                )
            elif isinstance(refunds, str):
                if refunds == payment.get("id"):
                    self.problem((*loc, "refunds"), "a refund cannot refund itself")
                elif (
                    self.local_ref(payment, loc, "refunds", "payment") is not None
                    and self.local["payment"][refunds].get("type") == "refund"
                ):
                    self.problem(
                        (*loc, "refunds"),
                        f"{_id(refunds)} is itself a refund; name the payment the money was "
                        "paid with",
                    )
        elif kind == "payment":
            if amount is not None and amount < 0:
                self.problem(
                    (*loc, "amount"),
                    f"a payment cannot be negative ({format_cents(amount)}); money paid back "
                    'is a payment of type "refund" that names the payment it refunds',
                )
            if refunds is not None:
                self.problem(
                    (*loc, "refunds"), 'only a refund (type "refund") names a payment in "refunds"'
                )

    def split(self, split: Mapping[str, Any], loc: Loc) -> None:
        self.local_ref(split, loc, "payment", "payment")
        self.local_ref(split, loc, "reverses", "split")
        charge = split.get("charge")
        installment = split.get("installment")
        if charge is None and installment is None:
            self.problem(
                (*loc, "charge"), "a split names the charge or the installment it pays", loc
            )
            return
        charge_ok = self.local_ref(split, loc, "charge", "charge")
        if not isinstance(installment, str):
            return
        plan = self.plan_of_installment.get(installment)
        if plan is None:
            self.problem(
                (*loc, "installment"),
                f"{_id(installment)} is not an installment of a payment plan of {self.name}",
            )
            return
        raw = plan.get("charges", [])
        if not isinstance(raw, list | tuple):
            return  # the plan's own problem is reported at the plan
        plan_charges = [c for c in raw if isinstance(c, str)]
        plan_id = plan.get("id")
        listed = ", ".join(plan_charges) or "it covers none"
        if charge is None:
            self.problem(
                (*loc, "charge"),
                f"a split to installment {installment} also names the charge of plan {plan_id} "
                f"that it pays ({listed})",
                loc,
            )
        elif charge_ok is not None and charge_ok not in plan_charges:
            self.problem(
                (*loc, "charge"),
                f"{_id(charge_ok)} is not one of plan {plan_id}'s charges ({listed}); a split to "
                f"installment {installment} pays one of them",
            )


# --------------------------------------------------------------------------
# Public API: loading
# --------------------------------------------------------------------------
def _read_limited(path: str | Path, source: str) -> bytes:
    """A file's bytes, refused (before they are read) past :func:`max_ledger_bytes`."""
    limit = max_ledger_bytes()
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size > limit:
                raise LedgerError(source, [Problem("", _too_large(size, limit, "the file"))])
            # At most one byte past the limit, whatever the file claims (a device, a growing file).
            data = stream.read(limit + 1)
    except FileNotFoundError:
        raise LedgerError(source, [Problem("", "no such file")]) from None
    except IsADirectoryError:
        raise LedgerError(source, [Problem("", "is a folder, not a ledger file")]) from None
    except OSError as error:
        raise LedgerError(source, [Problem("", f"cannot be read: {error.strerror}")]) from None
    if len(data) > limit:  # a device or a growing file: how big it is cannot be known
        raise LedgerError(source, [Problem("", _too_large(None, limit, "the file"))])
    return data


def load_ledger(path: str | Path) -> Ledger:
    """Read a ledger JSON file; raise :class:`LedgerError` with every problem found.

    A file larger than :func:`max_ledger_bytes` is refused before it is read.
    """
    source = str(path)
    return parse_ledger_text(_read_limited(path, source), source)


def parse_ledger_text(text: str | bytes, source: str) -> Ledger:
    """Parse a ledger from JSON text; ``source`` names it in errors (a file name, ``<stdin>``).

    Text longer than :func:`max_ledger_bytes` (bytes, or characters) is refused unparsed.
    """
    limit = max_ledger_bytes()
    if len(text) > limit:
        raise LedgerError(source, [Problem("", _too_large(len(text), limit))])
    try:
        doc, found = _parse_json(text)
    except _Unreadable as error:
        raise LedgerError(source, [Problem("", str(error))]) from None
    return _ledger_from(doc, source, found)


def ledger_from_document(doc: Mapping[str, Any], source: str) -> Ledger:
    """Validate a document that is already parsed (a plugin reader's mapping, a YAML scenario).

    Amounts may be strings, ints, Decimals or :class:`~paysplit.money.JsonNumber`; a float
    is refused (it cannot be an exact amount).
    """
    return _ledger_from(doc, source, [])


def _ledger_from(doc: object, source: str, found: list[_Found]) -> Ledger:
    if not isinstance(doc, Mapping):
        raise LedgerError(
            source,
            [
                Problem(
                    "",
                    f'a ledger is a JSON object with "format", "practice", "providers" and '
                    f'"accounts", not {_kind(doc)}',
                )
            ],
        )
    ledger: Ledger | None = None
    problems = _Problems()
    try:
        _carry(found, problems)
        ledger = _validated(Ledger, doc, (), problems, {f.where for f in problems})
        ids = _Ids("")
        practice = _check_header(doc, ids, problems)
        for index, account in _records(doc, "accounts"):
            check = _AccountCheck(account, ("accounts", index), practice, problems)
            check.collect(ids)
            check.check()
    except _Enough:
        ledger = None
    if problems or ledger is None:
        raise LedgerError(source, _ordered(doc, problems, ""))
    return ledger


_header_practice: tuple[LedgerHeader, _Practice] | None = None


def _practice_of(header: LedgerHeader) -> _Practice:
    # Batch runs check 200k accounts against one header: build its lookup sets once.
    global _header_practice
    if _header_practice is None or _header_practice[0] is not header:
        practice = _Practice.of((p.id for p in header.providers), (o.id for o in header.offices))
        _header_practice = (header, practice)
    return _header_practice[1]


def account_from_document(
    doc: object, source: str, header: LedgerHeader, path_prefix: str
) -> Account:
    """Validate one account (one pydantic call, one linear pass) against a ledger header.

    Problems are reported with paths starting at ``path_prefix`` (``accounts[5]``); ids
    are checked unique within the account, references against the header's providers
    and offices. Raises :class:`LedgerError` with ``source`` and every problem.
    """
    return _account_from(doc, source, header, path_prefix, [])


ONE_CALL_BYTES = 64 * 1024
"""An account line up to this long is validated in one pydantic call first: a line this
short cannot make more than a few thousand errors, so the record-by-record path (which
bounds them, see :func:`_validated`) is only needed to report the problems of a line
that does not validate, or of a longer one."""


def _valid_in_one_call(doc: Mapping[str, Any]) -> Account | None:
    """The account, when one ``model_validate`` call accepts it whole; None otherwise."""
    try:
        return Account.model_validate(doc)
    except ValidationError:
        return None


def _account_from(
    doc: object,
    source: str,
    header: LedgerHeader,
    prefix: str,
    found: list[_Found],
    *,
    one_call: bool = False,
) -> Account:
    if not isinstance(doc, Mapping):
        raise LedgerError(
            source, [Problem(prefix, f"an account is a JSON object, not {_kind(doc)}")]
        )
    account: Account | None = None
    problems = _Problems()
    try:
        _carry(found, problems)
        if one_call and not problems:
            account = _valid_in_one_call(doc)
        if account is None:
            account = _validated(Account, doc, (), problems, {f.where for f in problems})
        check = _AccountCheck(doc, (), _practice_of(header), problems)
        check.collect(_Ids(prefix))
        check.check()
    except _Enough:
        account = None
    if problems or account is None:
        raise LedgerError(source, _ordered(doc, problems, prefix))
    return account


def _header_from(doc: object, source: str, found: list[_Found]) -> LedgerHeader:
    if not isinstance(doc, Mapping):
        raise LedgerError(
            source, [Problem("", f"the header line is a JSON object, not {_kind(doc)}")]
        )
    problems = _Problems()
    header: LedgerHeader | None = None
    try:
        _carry(found, problems)
        skip: set[Loc] = {f.where for f in problems}
        if "accounts" in doc:
            problems.append(
                _Found(
                    ("accounts",),
                    "the first line of a JSON Lines ledger is the header (everything but the "
                    "accounts); put each account on a line of its own after it",
                )
            )
            skip.add(("accounts",))
        header = _validated(LedgerHeader, doc, (), problems, skip)
        _check_header(doc, _Ids(""), problems)
    except _Enough:
        header = None
    if problems or header is None:
        raise LedgerError(source, _ordered(doc, problems, ""))
    return header


def iter_jsonl(
    path: str | Path,
) -> tuple[LedgerHeader, Iterator[tuple[int, Account | LedgerError]]]:
    """Open a JSON Lines ledger: its header now, its accounts one line at a time.

    The header (line 1) must load, or :class:`LedgerError` is raised at once. The iterator
    yields ``(line number, Account)`` or ``(line number, LedgerError)`` for a line that does
    not load, and goes on with the next line; blank lines are skipped. Account ids are
    checked unique across lines; other ids only within their account (an account is the
    unit of allocation, and remembering every id of a 200k-account file costs too much).
    """
    file = Path(path)
    source = str(path)
    limit = max_ledger_bytes()
    try:
        with file.open("rb") as stream:
            first, length = _read_line(stream, limit)
    except OSError as error:
        raise LedgerError(source, [Problem("", f"cannot be read: {error.strerror}")]) from None
    if length > limit:
        raise LedgerError(
            f"{source} line 1", [Problem("", _too_large(length, limit, "the header line"))]
        )
    try:
        doc, found = _parse_json(first.rstrip(b"\r\n"), "the header line ", one_line=True)
    except _Unreadable as error:
        raise LedgerError(f"{source} line 1", [Problem("", str(error))]) from None
    header = _header_from(doc, f"{source} line 1", found)
    return header, _accounts_of(file, source, header)


def account_from_line(
    raw: str | bytes,
    source: str,
    header: LedgerHeader,
    path_prefix: str = "",
    line_number: int | None = None,
) -> Account:
    """One account line of a JSON Lines ledger, parsed and validated as :func:`iter_jsonl` does.

    For callers that read lines themselves (batch workers). Raises :class:`LedgerError`
    with ``source`` and every problem of the line.
    """
    where = f"line {line_number} " if line_number is not None else "the line "
    raw = raw.rstrip(b"\r\n") if isinstance(raw, bytes) else raw.rstrip("\r\n")
    try:
        doc, found = _parse_json(raw, where, one_line=True)
    except _Unreadable as error:
        raise LedgerError(source, [Problem(path_prefix, str(error))]) from None
    one_call = len(raw) <= ONE_CALL_BYTES
    return _account_from(doc, source, header, path_prefix, found, one_call=one_call)


def _read_line(stream: IO[bytes], limit: int) -> tuple[bytes, int]:
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


def _accounts_of(
    file: Path, source: str, header: LedgerHeader
) -> Iterator[tuple[int, Account | LedgerError]]:
    account_lines: dict[str, int] = {}
    index = 0
    limit = max_ledger_bytes()
    with file.open("rb") as stream:
        _read_line(stream, limit)
        number = 1
        while True:
            raw, length = _read_line(stream, limit)
            number += 1
            if not raw:
                break
            if not raw.strip():
                continue
            prefix = f"accounts[{index}]"
            index += 1
            where = f"{source} line {number}"
            if length > limit:
                problem = Problem(prefix, _too_large(length, limit, f"line {number}"))
                yield number, LedgerError(where, [problem])
                continue
            try:
                account = account_from_line(raw, where, header, prefix, number)
            except LedgerError as error:
                yield number, error
                continue
            first = account_lines.setdefault(account.id, number)
            if first != number:
                problem = Problem(
                    f"{prefix}.id", f"{account.id} is used twice (also at line {first})"
                )
                yield number, LedgerError(where, [problem])
                continue
            yield number, account


def load_jsonl_ledger(path: str | Path) -> Ledger:
    """Read a whole JSON Lines ledger into one :class:`Ledger` (every bad line reported).

    The whole ledger is then in memory, so the file is held to :func:`max_ledger_bytes` as a
    JSON document is; ``paysplit batch`` streams larger ones.
    """
    limit = max_ledger_bytes()
    with contextlib.suppress(OSError):  # an unreadable file is reported by iter_jsonl
        size = os.stat(path).st_size
        if size > limit:
            raise LedgerError(str(path), [Problem("", _too_large(size, limit, "the file"))])
    header, lines = iter_jsonl(path)
    accounts: list[Account] = []
    problems: list[Problem] = []
    for number, item in lines:
        if isinstance(item, LedgerError):
            problems.extend(Problem(p.path, f"{p.message} (line {number})") for p in item.problems)
            if len(problems) >= MAX_PROBLEMS:
                problems.append(Problem("", _MORE.format(count=len(problems))))
                break
        else:
            accounts.append(item)
    if problems:
        raise LedgerError(str(path), problems)
    fields = {name: getattr(header, name) for name in LedgerHeader.model_fields}
    return Ledger.model_construct(**fields, accounts=tuple(accounts))


def read_ledger_for_cli(path: str | Path, format_name: str = "json") -> Ledger:
    """The ledger a verb was given with ``--ledger PATH --ledger-format NAME``.

    This is the one place that maps a format name to a reader; readers that plugins
    supply (``paysplit_ledger_readers``) are to be looked up here, and their mapping
    validated with :func:`ledger_from_document`, so every verb accepts them at once.
    """
    if format_name == "json":
        return load_ledger(path)
    if format_name == "jsonl":
        return load_jsonl_ledger(path)
    known = ", ".join(LEDGER_FORMATS)
    raise UsageError(f'unknown ledger format "{format_name}"; formats available: {known}')


# --------------------------------------------------------------------------
# Public API: writing
# --------------------------------------------------------------------------
def _is_amount(model: type[BaseModel], name: str) -> bool:
    return any(
        isinstance(meta, PlainSerializer) and meta.func is format_cents
        for meta in model.model_fields[name].metadata
    )


@functools.cache
def _fields_of(model: type[BaseModel]) -> tuple[tuple[str, bool], ...]:
    """Field names in declaration order (``extra`` last) and whether each is an amount."""
    return tuple((name, _is_amount(model, name)) for name in model.model_fields if name != "extra")


def to_document(value: Any) -> Any:
    """A ledger, or any record of it, as JSON values: amounts as two-place strings,
    dates as ``YYYY-MM-DD``, ``extra`` as it was read and left out when absent."""
    if isinstance(value, BaseModel):
        out: dict[str, Any] = {}
        for name, is_amount in _fields_of(type(value)):
            item = getattr(value, name)
            out[name] = format_cents(item) if is_amount and item is not None else to_document(item)
        extra = getattr(value, "extra", None)
        if extra is not None:
            out["extra"] = extra
        return out
    if isinstance(value, tuple | list):
        return [to_document(item) for item in value]
    if isinstance(value, dict):
        return {key: to_document(item) for key, item in value.items()}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _emit(value: Any, indent: str | None, level: int, out: list[str]) -> None:
    """JSON text for plain values, keeping :class:`JsonNumber` as the number it was."""
    if isinstance(value, JsonNumber):
        out.append(str(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(float.__repr__(value))  # only in extra, from a YAML or Python caller
    elif isinstance(value, Mapping | list | tuple):
        _emit_container(value, indent, level, out)
    else:
        raise TypeError(f"cannot write a {type(value).__name__} value into a ledger")


def _emit_container(
    value: Mapping[str, Any] | list[Any] | tuple[Any, ...],
    indent: str | None,
    level: int,
    out: list[str],
) -> None:
    is_object = isinstance(value, Mapping)
    opening, closing = ("{", "}") if is_object else ("[", "]")
    if not value:
        out.append(opening + closing)
        return
    if indent is None:
        inner, separator, end, colon = "", ",", "", ":"
    else:
        inner = "\n" + indent * (level + 1)
        separator, end, colon = "," + inner, "\n" + indent * level, ": "
    out.append(opening + inner)
    items: Iterable[Any] = value.items() if isinstance(value, Mapping) else value
    for position, item in enumerate(items):
        if position:
            out.append(separator)
        if is_object:
            key, item = item
            out.append(json.dumps(str(key), ensure_ascii=False) + colon)
        _emit(item, indent, level + 1, out)
    out.append(end + closing)


def dump_ledger(ledger: Ledger) -> str:
    """The ledger as JSON text: 2-space indent, records in their order, a final newline."""
    out: list[str] = []
    _emit(to_document(ledger), "  ", 0, out)
    out.append("\n")
    return "".join(out)


def dump_jsonl_line(record: LedgerHeader | Account) -> str:
    """One line of a JSON Lines ledger (a header or an account), with its newline."""
    document = to_document(record)
    if isinstance(record, Ledger):
        document.pop("accounts", None)
    out: list[str] = []
    _emit(document, None, 0, out)
    out.append("\n")
    return "".join(out)


def write_ledger(ledger: Ledger, path: str | Path) -> None:
    """Write the ledger atomically: the old file stays whole if anything fails."""
    text = dump_ledger(ledger)  # serialised first: a failure here touches no file at all
    _write_atomically(Path(path), lambda: iter((text,)))


def write_jsonl(header: LedgerHeader, accounts: Iterable[Account], path: str | Path) -> None:
    """Write a JSON Lines ledger atomically, streaming the accounts one line at a time."""

    def lines() -> Iterator[str]:
        yield dump_jsonl_line(header)
        for account in accounts:
            yield dump_jsonl_line(account)

    _write_atomically(Path(path), lines)


def _write_atomically(path: Path, chunks: Callable[[], Iterator[str]]) -> None:
    # Through a symbolic link to the file it names, as open(path, "w") would: renaming over
    # the link itself would leave the real ledger stale and the link turned into a copy.
    real = Path(os.path.realpath(path)) if path.is_symlink() else path
    folder = real.parent if str(real.parent) else Path(".")
    temporary = folder / f".{real.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        # O_EXCL: never follow or reuse someone else's file; 0o666 minus the umask, as open().
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise LedgerWriteError(f"cannot write {path}: {error.strerror}") from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as stream:
            for chunk in chunks():
                stream.write(chunk)
            stream.flush()
            os.fsync(stream.fileno())
        with contextlib.suppress(FileNotFoundError):  # keep the old file's mode
            os.chmod(temporary, os.stat(real).st_mode & 0o7777)
        os.replace(temporary, real)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise LedgerWriteError(
                f"cannot write {path}: {error.strerror or error}; the old file is unchanged"
            ) from None
        if isinstance(error, UnicodeEncodeError):
            raise LedgerWriteError(
                f"cannot write {path}: some text holds {error.object[error.start]!a}, half of a "
                "UTF-16 surrogate pair, which is not a character; the old file is unchanged"
            ) from None
        raise
    _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every platform can open a folder)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
