"""The shape of a ledger: pydantic, one record at a time, its errors as sentences.

:func:`validated` checks a document (or an account, or a header) against the models of
:mod:`paysplit.ledger`. pydantic never sees more than one record's own fields (or a
chunk of a list of ids) in one call, so a mangled document cannot make millions of
errors at once, and the :class:`~paysplit.ledger_problems.ProblemList` stops the load
at its limit. Each pydantic error becomes a sentence about the practice's data
(``"amount" cannot be null; write an amount such as "12.50"``, ``unknown field "amout"
(did you mean "amount"?)``), at the same path a single call would give.
"""

from __future__ import annotations

import difflib
import functools
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from paysplit.ledger_problems import Found, Loc, ProblemList, kind_of, shown_value
from paysplit.money import JsonNumber

__all__ = ["validated"]


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
) -> list[Found]:
    """pydantic's errors for ``root`` (validated at ``prefix`` of the document) as problems."""
    found: list[Found] = []
    for item in error.errors(include_url=False, include_context=True):
        own: Loc = tuple(item["loc"])
        loc: Loc = (*prefix, *own)
        if loc in skip:
            continue
        kind = item["type"]
        value = item.get("input")
        field = _field_name(loc)
        if kind == "missing":
            found.append(Found(loc, f'"{field}" is required', shown_at=loc[:-1]))
        elif kind == "extra_forbidden":
            found.append(Found(loc, _unknown_field(root, own)))
        else:
            found.append(Found(loc, _sentence(kind, field, value, item)))
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


def validated(
    model: type[M], data: object, loc: Loc, found: ProblemList, skip: set[Loc]
) -> M | None:
    """``model.model_validate(data)``, with every record inside it validated on its own.

    pydantic then never sees more than one record's own fields (or :data:`_CHUNK` ids) at
    once, so a mangled document cannot make millions of errors in one call, and
    :class:`ProblemList` stops the whole load at its limit. Problems are the
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
                found.append(Found(at, _unknown_field(model, (key,))))
            failed = True
            continue
        shape = _shape(model, key)
        if shape is None:
            own[key] = value
        elif shape.kind == "record" and isinstance(value, Mapping):
            assert shape.model is not None
            record = validated(shape.model, value, at, found, skip)
            failed = failed or record is None
            own[key] = record if record is not None else shape.model.model_construct()
        elif shape.kind == "records" and isinstance(value, list | tuple):
            assert shape.model is not None
            records = [
                validated(shape.model, item, (*at, index), found, skip)
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
    found: ProblemList,
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
                found.append(Found(where, item.message, item.shown_at))
    if failed:
        return None
    if isinstance(value, Mapping):
        return {key: item for part in parts for key, item in part.items()}
    return tuple(item for part in parts for item in part)


def _one_call(
    model: type[M], data: object, loc: Loc, found: ProblemList, skip: set[Loc]
) -> M | None:
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
        return f'{kind_of(value)} is not an amount; write an amount such as "12.50"'
    if kind == "amount" and value is None:
        return f'"{field}" cannot be null; write an amount such as "12.50"'
    if kind in {"amount", "extra_type", "extra_value", "extra_depth"}:
        return str(item["msg"])
    if kind == "day_format":
        if value is None:
            return f'"{field}" cannot be null; write dates as YYYY-MM-DD'
        return f"{shown_value(value)} is not a date; write dates as YYYY-MM-DD"
    if kind == "moment_format":
        return f"{shown_value(value)} is not a date and time; write times as YYYY-MM-DDTHH:MM:SS"
    if kind in _DATE_KINDS:
        reason = item.get("ctx", {}).get("error")
        return f"{shown_value(value)} is not a valid date" + (f" ({reason})" if reason else "")
    if kind in _TIME_KINDS:
        return f"{shown_value(value)} is not a valid date and time; write YYYY-MM-DDTHH:MM:SS"
    if kind == "timezone_naive":
        return f"{shown_value(value)} has a time zone; ledger times are local, written without one"
    if kind == "string_type":
        if value is None:
            return f'"{field}" cannot be null here'
        if isinstance(value, JsonNumber | int | float) and not isinstance(value, bool):
            return f"{shown_value(value)} is a number; write it as text in quotes"
        return f'"{field}" must be text, not {kind_of(value)}'
    if kind == "bool_type":
        return f'"{field}" must be true or false, not {shown_value(value)}'
    if kind == "literal_error":
        expected = str(item.get("ctx", {}).get("expected", "")).replace("'", '"')
        return f'"{field}" must be {expected}, not {shown_value(value)}'
    if kind in {"tuple_type", "list_type"}:
        return f'"{field}" must be a list, not {kind_of(value)}'
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        if value is None:
            return f'"{field}" cannot be null here'
        return f"this must be an object, not {kind_of(value)}"
    message = str(item["msg"])
    return f"{shown_value(value)}: {message[0].lower()}{message[1:]}"
