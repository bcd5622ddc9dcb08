"""Writing a ledger: JSON text for every record, exactly, written atomically.

:func:`to_document` turns a ledger (or any record) into JSON values: amounts as
two-place strings, dates as ``YYYY-MM-DD``, ``extra`` exactly as it was read (a
:class:`~paysplit.money.JsonNumber` is written back as the number it was).
:func:`dump_ledger` is the JSON document (two-space indent, records in their order),
:func:`dump_jsonl_line` one line of a JSON Lines ledger. :func:`write_ledger` and
:func:`write_jsonl` replace a file atomically (:mod:`paysplit.atomic`): the old file
stays whole if anything fails.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, PlainSerializer

from paysplit.atomic import write_atomically
from paysplit.errors import WriteError
from paysplit.ledger import Account, Ledger, LedgerHeader
from paysplit.money import JsonNumber, format_cents


class LedgerWriteError(WriteError):
    """A ledger could not be written; the file that was there is unchanged."""


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
    write_atomically(path, (text,), error=LedgerWriteError)


def write_jsonl(header: LedgerHeader, accounts: Iterable[Account], path: str | Path) -> None:
    """Write a JSON Lines ledger atomically, streaming the accounts one line at a time."""

    def lines() -> Iterator[str]:
        yield dump_jsonl_line(header)
        for account in accounts:
            yield dump_jsonl_line(account)

    write_atomically(path, lines(), error=LedgerWriteError)
