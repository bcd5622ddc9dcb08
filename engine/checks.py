"""Static warnings about rules that load but are probably not what was meant.

- a rule that can never select anything (its ``where`` conditions contradict
  each other: sets of enum and id values, and intervals of money, dates and
  ages, are intersected for every alternative of the conditions);
- a clause written twice (in a rule, in the settings, or in a rule and again
  in the settings);
- a clause another one makes redundant (a phrase that names others in
  ``Phrase.makes_redundant``), in the rule or the settings.

``paysplit check`` prints warnings and still exits 0 unless ``--strict``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from paysplit.errors import Diagnostic
from paysplit.expressions import ORDERED, AllOf, AnyOf, Condition, Leaf
from paysplit.rules import Location

MAX_ALTERNATIVES = 64
"""Beyond this many alternatives (``or`` multiplied out) a rule is not analysed."""
NON_NEGATIVE = frozenset({"patient_balance"})


@dataclass(frozen=True)
class ClauseNote:
    """What the checks need to know about one compiled clause."""

    key: str
    """The clause in canonical spelling: equal keys are the same clause."""
    text: str
    head: str | None
    """A plugin phrase's fixed words (what ``makes_redundant`` names)."""
    makes_redundant: tuple[str, ...]
    location: Location
    in_settings: bool = False
    mode: str | None = None
    """The mode whose expansion gave this clause."""


@dataclass(frozen=True)
class RuleNotes:
    name: str
    location: Location
    clauses: tuple[ClauseNote, ...]
    conditions: tuple[tuple[Condition, Location], ...]


LineOf = Callable[[Location], str]


def warnings_for(
    rules: Sequence[RuleNotes], settings: Sequence[ClauseNote], line_of: LineOf
) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    found += _repeated(list(settings), (), line_of)
    found += _redundant(list(settings), line_of, settings_only=True)
    for rule in rules:
        found += _repeated(list(rule.clauses), settings, line_of)
        found += _redundant([*settings, *rule.clauses], line_of, settings_only=False)
        found += _never_selects(rule, line_of)
    once: dict[tuple[str, int, int], Diagnostic] = {}
    for warning in found:
        once.setdefault((warning.file, warning.line, warning.column), warning)
    return list(once.values())


def _warning(
    location: Location, message: str, hint: str, line_of: LineOf, width: int
) -> Diagnostic:
    return Diagnostic(
        location.file,
        location.line,
        location.column,
        message,
        hint,
        "warning",
        line_of(location),
        width,
    )


def _where(note: ClauseNote) -> str:
    if note.in_settings:
        return f"in the settings, line {note.location.line}"
    if note.mode is not None:
        return f'mode "{note.mode}" on line {note.location.line}'
    return f"line {note.location.line}"


def _repeated(
    clauses: list[ClauseNote], settings: Sequence[ClauseNote], line_of: LineOf
) -> list[Diagnostic]:
    found = []
    seen: dict[str, ClauseNote] = {}
    for note in settings:
        seen.setdefault(note.key, note)
    for note in clauses:
        first = seen.get(note.key)
        if first is None:
            seen[note.key] = note
            continue
        if note.mode is not None and first.mode == note.mode:
            continue
        if note.mode is not None:
            note, first = first, note  # point at the clause the author wrote
            if note.mode is not None:
                continue
        found.append(
            _warning(
                note.location,
                f'clause "{note.text}" is repeated: {_where(first)} already has it',
                "remove one of them",
                line_of,
                len(note.text),
            )
        )
    return found


def _redundant(
    clauses: list[ClauseNote], line_of: LineOf, *, settings_only: bool
) -> list[Diagnostic]:
    found = []
    for strong in clauses:
        for weak in clauses:
            if weak is strong or weak.head is None or weak.head not in strong.makes_redundant:
                continue
            if weak.in_settings and not settings_only:
                continue  # reported once, for the settings themselves
            if weak.mode is not None:
                continue
            found.append(
                _warning(
                    weak.location,
                    f'clause "{weak.text}" adds nothing: "{strong.text}" '
                    f"({_where(strong)}) makes it redundant",
                    "remove it",
                    line_of,
                    len(weak.text),
                )
            )
    return found


# --- a rule that can never select anything ------------------------------------------
def _never_selects(rule: RuleNotes, line_of: LineOf) -> list[Diagnostic]:
    if not rule.conditions:
        return []
    whole = AllOf(tuple(condition for condition, _ in rule.conditions))
    alternatives = _alternatives(whole)
    if alternatives is None:
        return []
    reasons = [_contradiction(leaves) for leaves in alternatives]
    if any(reason is None for reason in reasons):
        return []
    location = rule.conditions[0][1]
    detail = reasons[0] if len(reasons) == 1 else "none of its where conditions can hold"
    return [
        _warning(
            location,
            f'rule "{rule.name}" can never select anything: {detail}',
            "check the where conditions",
            line_of,
            5,
        )
    ]


def _alternatives(condition: Condition) -> list[list[Leaf]] | None:
    """The condition multiplied out into alternatives of comparisons (None: too many)."""
    if isinstance(condition, Leaf):
        return [[condition]]
    parts = [_alternatives(item) for item in condition.items]
    if any(part is None for part in parts):
        return None
    if isinstance(condition, AnyOf):
        joined = [alt for part in parts if part is not None for alt in part]
        return joined if len(joined) <= MAX_ALTERNATIVES else None
    product: list[list[Leaf]] = [[]]
    for part in parts:
        assert part is not None
        product = [left + right for left in product for right in part]
        if len(product) > MAX_ALTERNATIVES:
            return None
    return product


def _contradiction(leaves: list[Leaf]) -> str | None:
    """Why these comparisons cannot all hold, or None if they can."""
    by_field: dict[str, list[Leaf]] = {}
    for leaf in leaves:
        if leaf.other is None:
            by_field.setdefault(leaf.field, []).append(leaf)
    for name, group in by_field.items():
        if not _possible(name, group):
            joined = " and ".join(dict.fromkeys(_shown(leaf) for leaf in group))
            return f"{joined} cannot all hold"
    return None


def _shown(leaf: Leaf) -> str:
    written_negative = " != " in leaf.text or " not in (" in leaf.text
    return leaf.text if leaf.negated == written_negative else f"not ({leaf.text})"


def _possible(name: str, leaves: list[Leaf]) -> bool:
    allowed: set[Any] | None = None
    excluded: set[Any] = set()
    low: int | None = 0 if name in NON_NEGATIVE else None
    high: int | None = None
    ordered = leaves[0].type in ORDERED
    for leaf in leaves:
        values = [_number(v) for v in leaf.values] if ordered else list(leaf.values)
        op: str = leaf.op
        if op in ("=", "in"):
            if leaf.negated:
                excluded.update(values)
            else:
                allowed = set(values) if allowed is None else allowed & set(values)
            continue
        value = values[0]
        if leaf.negated:
            op = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}[op]
        if op == ">":
            low = value + 1 if low is None else max(low, value + 1)
        elif op == ">=":
            low = value if low is None else max(low, value)
        elif op == "<":
            high = value - 1 if high is None else min(high, value - 1)
        else:
            high = value if high is None else min(high, value)
    if low is not None and high is not None and low > high:
        return False
    if allowed is not None:
        left = {
            v
            for v in allowed - excluded
            if (low is None or v >= low) and (high is None or v <= high)
        }
        return bool(left)
    if low is not None and high is not None:
        return high - low + 1 > len({v for v in excluded if low <= v <= high})
    return True


def _number(value: Any) -> int:
    """Money (cents), ages (days) and dates (day numbers) as whole numbers."""
    return value.toordinal() if hasattr(value, "toordinal") else int(value)
