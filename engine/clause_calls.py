"""Calling plugin code from the allocation core, and refusing what it returns.

Every clause method the core runs goes through :func:`call_clause`, so a
plugin that raises ends in a :class:`~paysplit.errors.PluginError` naming it
(a :class:`~paysplit.errors.PaysplitError` passes through unchanged). When a
plugin returns something impossible, :func:`refuse` makes the error that says
so, before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from paysplit.errors import PaysplitError, PluginError
from paysplit.rules import CompiledClause

T = TypeVar("T")

__all__ = ["call_clause", "refuse"]


def call_clause(clause: CompiledClause[Any], what: str, fn: Callable[..., T], *args: Any) -> T:
    """Call a clause's method; any exception becomes a PluginError naming the plugin."""
    try:
        return fn(*args)
    except PaysplitError:
        raise
    except Exception as exc:
        raise PluginError(
            clause.plugin,
            f"clause {clause.text!r} ({clause.location}) failed in {what}: "
            f"{type(exc).__name__}: {exc}",
        ) from exc


def refuse(clause: CompiledClause[Any], message: str) -> PluginError:
    """The error for a clause whose plugin returned something impossible."""
    return PluginError(
        clause.plugin, f"clause {clause.text!r} ({clause.location}) {message}; nothing was written"
    )
