"""What the allocation core looks up about a rule once, before any account.

Which guards can speak at each point of a run (a method left at the base
class's neutral default decides nothing, so it is not called), the filters with
their locations, whether the source may skip a target, and the kinds the rule's
scopes admit: :func:`prepared_rule` works these out once per rule (with the
settings' guards) and keeps them, since compiled rules do not change. A rule run
(:mod:`paysplit.rule_run_state`) reads them from here.
"""

from __future__ import annotations

from typing import Any

from paysplit.policy import Clause, Guard, Source
from paysplit.rules import CompiledClause, CompiledRule

__all__ = ["Prepared", "prepared_rule"]


def _overrides(clause: CompiledClause[Any], name: str, base: type[Clause]) -> bool:
    """False when the clause's ``name`` method is the base class's neutral default
    (which decides nothing: calling it cannot change the plan)."""
    method = getattr(clause.impl, name, None)
    return getattr(method, "__func__", None) is not getattr(base, name)


class Prepared:
    """What a run of one rule (with the settings' guards) looks up before any account:
    made once per rule and reused, since compiled rules do not change."""

    __slots__ = (
        "admitted_kinds",
        "filters",
        "guards",
        "operation_guards",
        "outcome_guards",
        "rule",
        "rule_at",
        "settings_guards",
        "source_skips",
        "split_guards",
    )

    def __init__(
        self, rule: CompiledRule, settings_guards: tuple[CompiledClause[Guard], ...]
    ) -> None:
        self.rule = rule
        self.settings_guards = settings_guards
        guards: tuple[CompiledClause[Guard], ...] = (*settings_guards, *rule.guards)
        self.guards = guards
        self.rule_at = str(rule.location)
        # A guard method that is the neutral default decides nothing: it is not called.
        # Nor is ``check_split`` of a guard that speaks only beyond the limits no
        # automatic split reaches (``Guard.speaks_only_beyond_limits``).
        self.split_guards = tuple(
            g
            for g in guards
            if _overrides(g, "check_split", Guard)
            and getattr(g.impl, "speaks_only_beyond_limits", False) is not True
        )
        self.operation_guards = tuple(g for g in guards if _overrides(g, "check_operation", Guard))
        self.outcome_guards = tuple(g for g in guards if _overrides(g, "check_outcome", Guard))
        self.filters = tuple((f, f.impl.skip_reason, str(f.location)) for f in rule.filters)
        self.source_skips = _overrides(rule.source, "skip_reason", Source)
        admitted: set[str] = set()
        for scope in rule.scopes:
            admitted |= set(scope.impl.admitted_kinds)
        self.admitted_kinds = frozenset(admitted)


_PREPARED: dict[tuple[int, int], Prepared] = {}


def prepared_rule(
    rule: CompiledRule, settings_guards: tuple[CompiledClause[Guard], ...]
) -> Prepared:
    """The preparation of ``rule`` with ``settings_guards``, kept by the objects' identity
    (an id may be reused once its object is gone, hence the check) in a bounded cache."""
    key = (id(rule), id(settings_guards))
    found = _PREPARED.get(key)
    if found is None or found.rule is not rule or found.settings_guards is not settings_guards:
        if len(_PREPARED) >= 256:
            _PREPARED.clear()
        found = _PREPARED[key] = Prepared(rule, settings_guards)
    return found
