"""Calling plugin code from the allocation core, and refusing what it returns.

Every clause method the core runs goes through :func:`call_clause`, so a
plugin that raises ends in a :class:`~paysplit.errors.PluginError` naming it
(a :class:`~paysplit.errors.PaysplitError` passes through unchanged). When a
plugin returns something impossible, :func:`refuse` makes the error that says
so, before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from paysplit.errors import PaysplitError, PluginError
from paysplit.rules import CompiledClause

T = TypeVar("T")

__all__ = ["call_clause", "call_each", "refuse"]


def call_clause(clause: CompiledClause[Any], what: str, fn: Callable[..., T], *args: Any) -> T:
    """Call a clause's method; any exception becomes a PluginError naming the plugin."""
    try:
        return fn(*args)
    except PaysplitError:
        raise
    except Exception as exc:
        raise _failed(clause, what, exc) from exc


def call_each(
    clause: CompiledClause[Any], what: str, fn: Callable[[Any], T], items: Iterable[Any]
) -> list[T]:
    """``[call_clause(clause, what, fn, item) for item in items]`` in one try block: the
    hot path calls a filter once per charge, and a try per call costs."""
    try:
        return [fn(item) for item in items]
    except PaysplitError:
        raise
    except Exception as exc:
        raise _failed(clause, what, exc) from exc


def _failed(clause: CompiledClause[Any], what: str, exc: Exception) -> PluginError:
    return PluginError(
        clause.plugin,
        f"clause {clause.text!r} ({clause.location}) failed in {what}: {type(exc).__name__}: {exc}",
    )


def refuse(clause: CompiledClause[Any], message: str) -> PluginError:
    """The error for a clause whose plugin returned something impossible."""
    return PluginError(
        clause.plugin, f"clause {clause.text!r} ({clause.location}) {message}; nothing was written"
    )
