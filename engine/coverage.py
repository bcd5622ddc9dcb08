"""Rule coverage: which rules the scenarios ran, and which clauses decided something.

``paysplit test --coverage`` and ``pytest --paysplit-coverage`` run every
scenario with the rules *instrumented*: each compiled clause's implementation
is wrapped in a recorder that notes what it was asked and what it answered,
and after each step the answers are read against the plan. A clause is
counted by its compiled identity (its rule, kind, text and the position where
it is written), never by line, so reformatting a rule file (one line or a
block, ``paysplit fmt``) changes neither what is counted nor the result.

What is counted, per rule file:

* every **rule**: it *ran* in a step that applied it (``apply``, a
  ``post_payment`` with it named or as the default rule, the ``on charge
  added`` rules of a ``post_charge``), blocked or not;
* every **clause** of every rule (a ``mode`` counts as the clauses it
  expands to), and every guard written in the ``settings`` block.

When a clause **decided** something, by kind:

============  ==============================================================
kind          decided when, in one step
============  ==============================================================
filter        it skipped a target (``skip_reason`` gave a reason)
order         it separated two candidates that the orders before it left
              tied (its sort keys differ for them), so it chose who goes first
preference    it preferred some credit or target and not another
              (``prefers`` answered both yes and no)
scope         a split of its rule paid a charge its widening admitted: a
              patient it added (``target_patients``), credit of a patient it
              added (``credit_patients``), or a charge of an opt-in kind it
              admits (``Scope.admitted_kinds``)
source        credit it supplied was split, or it skipped a target
target        a split of its rule went to a candidate it supplied
distribution  it proposed at least one amount
guard         it blocked an operation, refused or warned about a split, or
              withheld an outcome (any answer but "go ahead")
leftover      it chose what happens to credit left over (returned a credit note)
other         (``on ...``, core clauses with nothing to call) its rule ran
============  ==============================================================

Coverage is (rules that ran + clauses that decided) / (rules + clauses); a
``--fail-under PERCENT`` below it fails the run. The report also counts how
often each rule ran and each clause decided, and lists what never did.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from paysplit.ledger import Ledger
from paysplit.plans import Plan
from paysplit.policy import Refuse, Warn
from paysplit.rules import CompiledClause, CompiledRule, Location, RuleSet

__all__ = [
    "SETTINGS",
    "ClauseId",
    "ClauseReport",
    "Coverage",
    "CoverageReport",
    "FileReport",
    "RuleReport",
    "parse_percent",
    "percent_text",
]

SETTINGS = "(settings)"
"""The pseudo-rule under which the guards of a settings block are reported."""

_RECORDED = frozenset(
    {
        "skip_reason",
        "sort_key",
        "prefers",
        "credit",
        "candidates",
        "target_patients",
        "credit_patients",
        "propose",
        "check_operation",
        "check_split",
        "check_outcome",
        "leftover",
    }
)


def _absolute(file: str) -> str:
    return os.path.abspath(file)


def _shown(file: str) -> str:
    absolute = Path(os.path.abspath(file))
    try:
        return absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return absolute.as_posix()


@dataclass(frozen=True, order=True)
class ClauseId:
    """A compiled clause's identity: the same in every compilation of the same file."""

    file: str
    """The rule file, absolute."""
    line: int
    column: int
    rule: str
    kind: str
    text: str
    ordinal: int = 0
    """Tells apart clauses a mode expands to at one position."""

    def where(self) -> str:
        return f"{_shown(self.file)}:{self.line}:{self.column}"


@dataclass
class _Call:
    clause: ClauseId
    method: str
    args: tuple[Any, ...]
    result: Any


class _Recording:
    """Stands in for a clause implementation: forwards everything, notes what was asked."""

    __slots__ = ("_clause", "_impl", "_log")

    def __init__(self, impl: Any, clause: ClauseId, log: list[_Call]) -> None:
        object.__setattr__(self, "_impl", impl)
        object.__setattr__(self, "_clause", clause)
        object.__setattr__(self, "_log", log)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance() sees the real implementation's class
        return type(self._impl)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._impl, name)
        if name not in _RECORDED or not callable(value):
            return value
        clause = self._clause
        log = self._log

        def recorded(*args: Any) -> Any:
            result = value(*args)
            if name in ("credit", "candidates", "target_patients", "credit_patients"):
                result = list(result)  # iterables are read once: keep what was given
            log.append(_Call(clause, name, args, result))
            return result

        return recorded

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("clause implementations are read-only")

    def __repr__(self) -> str:
        return repr(self._impl)


# =============================================================================
# What is counted
# =============================================================================
@dataclass
class _ClauseStat:
    id: ClauseId
    plugin: str
    decisions: int = 0
    how: Counter[str] = field(default_factory=Counter)


@dataclass
class _RuleStat:
    file: str
    name: str
    title: str
    location: Location
    clauses: list[ClauseId] = field(default_factory=list)
    runs: int = 0


@dataclass
class _FileStat:
    file: str
    rules: dict[str, _RuleStat] = field(default_factory=dict)
    clauses: dict[ClauseId, _ClauseStat] = field(default_factory=dict)


def _field_clauses(rule: CompiledRule) -> list[CompiledClause[Any]]:
    found: list[CompiledClause[Any]] = [rule.source]
    if rule.targets is not None:
        found.append(rule.targets)
    found += [*rule.orders, *rule.filters, *rule.scopes, *rule.preferences, *rule.guards]
    if rule.distribution is not None:
        found.append(rule.distribution)
    if rule.leftover is not None:
        found.append(rule.leftover)
    return found


def _counted(rule: CompiledRule) -> list[CompiledClause[Any]]:
    """The clauses of a rule that coverage counts: as written (modes expanded)."""
    if rule.clauses:
        return list(rule.clauses)
    return _field_clauses(rule)


class Coverage:
    """Collects rule coverage over a test session (see the module docstring)."""

    def __init__(self) -> None:
        self.files: dict[str, _FileStat] = {}
        self._log: list[_Call] = []
        self._rule_of_clause: dict[ClauseId, str] = {}
        self._instrumented: list[RuleSet] = []
        """Every instrumented rule set handed out (kept for the session's lifetime)."""
        self.problems: list[str] = []

    # -- what there is to cover ------------------------------------------------------
    def _file(self, file: str) -> _FileStat:
        absolute = _absolute(file)
        stat = self.files.get(absolute)
        if stat is None:
            stat = self.files[absolute] = _FileStat(absolute)
        return stat

    def _identify(
        self, clause: CompiledClause[Any], rule: str, seen: Counter[tuple[Any, ...]]
    ) -> ClauseId:
        loc = clause.location
        base = (_absolute(loc.file), loc.line, loc.column, rule, clause.kind, clause.text)
        ordinal = seen[base]
        seen[base] += 1
        return ClauseId(*base, ordinal=ordinal)

    def add_rules(self, rules: RuleSet) -> dict[int, ClauseId]:
        """Count every rule and clause of a rule set; returns id(clause) -> identity."""
        known: dict[int, ClauseId] = {}
        for rule in rules.rules.values():
            stat_file = self._file(rule.location.file)
            stat = stat_file.rules.get(rule.name)
            if stat is None:
                stat = stat_file.rules[rule.name] = _RuleStat(
                    file=stat_file.file, name=rule.name, title=rule.title, location=rule.location
                )
            seen: Counter[tuple[Any, ...]] = Counter()
            ids = []
            for clause in _counted(rule):
                clause_id = self._identify(clause, rule.name, seen)
                known[id(clause)] = clause_id
                ids.append(clause_id)
                clause_file = self._file(clause.location.file)
                if clause_id not in clause_file.clauses:
                    clause_file.clauses[clause_id] = _ClauseStat(clause_id, clause.plugin)
                self._rule_of_clause[clause_id] = rule.name
            if not stat.clauses:
                stat.clauses = ids
        files = {_absolute(f) for f in rules.files}
        seen_settings: Counter[tuple[Any, ...]] = Counter()
        for guard in rules.settings.guards:
            loc = guard.location
            if _absolute(loc.file) not in files or loc.line < 1:
                continue  # a plugin setting's default, not written in any file
            clause_id = self._identify(guard, SETTINGS, seen_settings)
            known[id(guard)] = clause_id
            clause_file = self._file(loc.file)
            if clause_id not in clause_file.clauses:
                clause_file.clauses[clause_id] = _ClauseStat(clause_id, guard.plugin)
        for file in rules.files:
            self._file(file)
        return known

    def instrument(self, rules: RuleSet) -> RuleSet:
        """Count the rule set, and return a copy whose clauses record what they decide."""
        known = self.add_rules(rules)
        wrapped: dict[int, CompiledClause[Any]] = {}

        def wrap(clause: CompiledClause[Any]) -> CompiledClause[Any]:
            done = wrapped.get(id(clause))
            if done is not None:
                return done
            clause_id = known.get(id(clause))
            if clause_id is None:
                loc = clause.location
                clause_id = ClauseId(
                    _absolute(loc.file), loc.line, loc.column, "", clause.kind, clause.text, -1
                )
            copy = dataclasses.replace(clause, impl=_Recording(clause.impl, clause_id, self._log))
            wrapped[id(clause)] = copy
            return copy

        def wrap_all(clauses: Iterable[CompiledClause[Any]]) -> tuple[CompiledClause[Any], ...]:
            return tuple(wrap(c) for c in clauses)

        new_rules: dict[str, CompiledRule] = {}
        for name, rule in rules.rules.items():
            new_rules[name] = dataclasses.replace(
                rule,
                source=wrap(rule.source),
                targets=None if rule.targets is None else wrap(rule.targets),
                orders=wrap_all(rule.orders),
                filters=wrap_all(rule.filters),
                scopes=wrap_all(rule.scopes),
                preferences=wrap_all(rule.preferences),
                guards=wrap_all(rule.guards),
                distribution=None if rule.distribution is None else wrap(rule.distribution),
                leftover=None if rule.leftover is None else wrap(rule.leftover),
                clauses=wrap_all(rule.clauses),
            )
        settings = dataclasses.replace(rules.settings, guards=wrap_all(rules.settings.guards))
        instrumented = dataclasses.replace(rules, rules=new_rules, settings=settings)
        self._instrumented.append(instrumented)
        return instrumented

    # -- what happened ------------------------------------------------------------------
    def begin_step(self) -> None:
        self._log.clear()

    def end_step(
        self, rules: RuleSet, plan: Plan | None, ledger: Ledger, ran: Sequence[str]
    ) -> None:
        """Read one step's recorded calls against its plan."""
        calls = list(self._log)
        self._log.clear()
        for name in dict.fromkeys(ran):
            rule = rules.rule(name)
            if rule is None:
                continue
            stat = self._file(rule.location.file).rules.get(rule.name)
            if stat is not None:
                stat.runs += 1
        decided: dict[ClauseId, str] = {}
        for clause_id, how in _decisions(rules, calls, plan, ledger, ran):
            decided.setdefault(clause_id, how)
        for clause_id, how in decided.items():
            if clause_id.ordinal < 0:
                continue
            stat_file = self.files.get(clause_id.file)
            clause_stat = None if stat_file is None else stat_file.clauses.get(clause_id)
            if clause_stat is not None:
                clause_stat.decisions += 1
                clause_stat.how[how] += 1

    # -- the report ----------------------------------------------------------------------
    def report(self) -> CoverageReport:
        files: list[FileReport] = []
        for file in sorted(self.files):
            stat = self.files[file]
            rules: list[RuleReport] = []
            for rule in sorted(stat.rules.values(), key=lambda r: (r.location.line, r.name)):
                clauses = [_clause_report(stat.clauses[c]) for c in rule.clauses]
                rules.append(
                    RuleReport(
                        name=rule.name,
                        title=rule.title,
                        where=f"{_shown(file)}:{rule.location.line}:{rule.location.column}",
                        runs=rule.runs,
                        clauses=tuple(clauses),
                    )
                )
            settings = tuple(
                _clause_report(c)
                for c in sorted(stat.clauses.values(), key=lambda c: c.id)
                if c.id.rule == SETTINGS
            )
            files.append(FileReport(file=_shown(file), rules=tuple(rules), settings=settings))
        return CoverageReport(files=tuple(files))


def _clause_report(stat: _ClauseStat) -> ClauseReport:
    return ClauseReport(
        text=stat.id.text,
        kind=stat.id.kind,
        where=stat.id.where(),
        plugin=stat.plugin,
        decisions=stat.decisions,
        how=tuple(sorted(stat.how)),
    )


# =============================================================================
# Reading recorded calls
# =============================================================================
def _decisions(
    rules: RuleSet,
    calls: Sequence[_Call],
    plan: Plan | None,
    ledger: Ledger,
    ran: Sequence[str],
) -> Iterable[tuple[ClauseId, str]]:
    splits = [] if plan is None or plan.blocked is not None else list(plan.splits)
    charges = {c.id: c for a in ledger.accounts for c in a.charges}
    payments = {p.id: p for a in ledger.accounts for p in a.payments}

    def by_rule(rule: str) -> list[Any]:
        return [s for s in splits if s.rule == rule and s.amount > 0]

    keys: dict[ClauseId, dict[str, Any]] = {}
    answers: dict[ClauseId, set[bool]] = {}
    called: set[ClauseId] = set()
    for call in calls:
        clause = call.clause
        called.add(clause)
        method, result = call.method, call.result
        if method == "skip_reason" and result is not None:
            yield clause, "skipped a target"
        elif method == "check_operation" and result is not None:
            yield clause, "blocked an operation"
        elif method == "check_split" and isinstance(result, Refuse):
            yield clause, "refused a split"
        elif method == "check_split" and isinstance(result, Warn):
            yield clause, "warned about a split"
        elif method == "check_split" and result is not None:
            yield clause, "answered a split"
        elif method == "check_outcome" and result is not None:
            yield clause, "withheld an outcome"
        elif method == "leftover" and result is not None:
            yield clause, "chose a leftover"
        elif method == "propose" and result:
            yield clause, "distributed credit"
        elif method == "credit":
            supplied = {getattr(p, "id", None) for p in result}
            if any(s.payment in supplied for s in by_rule(clause.rule)):
                yield clause, "supplied credit"
        elif method == "candidates":
            offered = {getattr(c, "id", None) for c in result}
            if any(s.charge in offered for s in by_rule(clause.rule)):
                yield clause, "chose targets"
        elif method == "target_patients":
            own = call.args[1] if len(call.args) > 1 else None
            added = {str(p) for p in result} - {own}
            for s in by_rule(clause.rule):
                charge = charges.get(s.charge or "")
                if charge is not None and charge.patient in added:
                    yield clause, "widened the targets"
                    break
        elif method == "credit_patients":
            own = call.args[1] if len(call.args) > 1 else None
            added = {str(p) for p in result} - {own}
            for s in by_rule(clause.rule):
                charge = charges.get(s.charge or "")
                payment = payments.get(s.payment)
                if (
                    charge is not None
                    and payment is not None
                    and charge.patient == own
                    and payment.patient in added
                ):
                    yield clause, "widened the credit"
                    break
        elif method == "sort_key" and call.args:
            target_id = getattr(call.args[0], "id", None)
            keys.setdefault(clause, {})[str(target_id)] = result
        elif method == "prefers":
            answers.setdefault(clause, set()).add(bool(result))
    for preferring, seen in answers.items():
        if seen == {True, False}:
            yield preferring, "preferred"
    ran_set = set(ran)
    for name in ran_set:
        rule = rules.rule(name)
        if rule is None:
            continue
        yield from _order_decisions(rule, keys)
        rule_splits = by_rule(name)
        for compiled in rule.clauses or tuple(_field_clauses(rule)):
            impl = compiled.impl
            clause_id = getattr(impl, "_clause", None)
            if not isinstance(clause_id, ClauseId):
                continue
            admitted: frozenset[str] = frozenset()
            if compiled.kind == "scope":
                admitted = frozenset(getattr(impl, "admitted_kinds", ()))
            if admitted and any(
                charges[s.charge].kind in admitted for s in rule_splits if s.charge in charges
            ):
                yield clause_id, "admitted a kind"
            if clause_id in called or compiled.kind in _CALLED_KINDS:
                continue
            if compiled.kind == "target" and rule.to_installments:
                if any(s.installment is not None for s in rule_splits):
                    yield clause_id, "chose targets"
            elif compiled.kind in ("source", "target"):
                if rule_splits:
                    yield (
                        clause_id,
                        "supplied credit" if compiled.kind == "source" else "chose targets",
                    )
            else:
                yield clause_id, "ran with its rule"


_CALLED_KINDS = frozenset(
    {"filter", "order", "preference", "scope", "distribution", "guard", "leftover"}
)
"""Kinds whose decisions are read from their answers only (never from the rule running)."""


def _order_decisions(
    rule: CompiledRule, keys: Mapping[ClauseId, Mapping[str, Any]]
) -> Iterable[tuple[ClauseId, str]]:
    """An order decided when it told apart candidates that the earlier orders tied."""
    earlier: list[Mapping[str, Any]] = []
    for order in rule.orders:
        clause_id = getattr(order.impl, "_clause", None)
        mine = keys.get(clause_id) if isinstance(clause_id, ClauseId) else None
        if mine is None:
            continue
        targets = list(mine)
        separated = False
        for i, first in enumerate(targets):
            for second in targets[i + 1 :]:
                tied = all(
                    first in prior and second in prior and _same(prior[first], prior[second])
                    for prior in earlier
                )
                if tied and not _same(mine[first], mine[second]):
                    separated = True
                    break
            if separated:
                break
        if separated and isinstance(clause_id, ClauseId):
            yield clause_id, "ordered targets"
        earlier.append(mine)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # an exotic sort key: treat as different
        return False


# =============================================================================
# The report
# =============================================================================
@dataclass(frozen=True)
class ClauseReport:
    text: str
    kind: str
    where: str
    plugin: str
    decisions: int
    how: tuple[str, ...]

    @property
    def covered(self) -> bool:
        return self.decisions > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "clause": self.text,
            "kind": self.kind,
            "where": self.where,
            "plugin": self.plugin,
            "decisions": self.decisions,
            "how": list(self.how),
        }


@dataclass(frozen=True)
class RuleReport:
    name: str
    title: str
    where: str
    runs: int
    clauses: tuple[ClauseReport, ...]

    @property
    def covered(self) -> bool:
        return self.runs > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.name,
            "where": self.where,
            "runs": self.runs,
            "clauses": [c.to_json() for c in self.clauses],
        }


@dataclass(frozen=True)
class FileReport:
    file: str
    rules: tuple[RuleReport, ...]
    settings: tuple[ClauseReport, ...]

    @property
    def clauses(self) -> tuple[ClauseReport, ...]:
        return (*self.settings, *(c for r in self.rules for c in r.clauses))

    @property
    def rules_run(self) -> int:
        return sum(1 for r in self.rules if r.covered)

    @property
    def clauses_decided(self) -> int:
        return sum(1 for c in self.clauses if c.covered)

    @property
    def items(self) -> int:
        return len(self.rules) + len(self.clauses)

    @property
    def covered(self) -> int:
        return self.rules_run + self.clauses_decided

    @property
    def percent(self) -> Fraction:
        return Fraction(100) if not self.items else Fraction(100 * self.covered, self.items)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rules": len(self.rules),
            "rules_run": self.rules_run,
            "clauses": len(self.clauses),
            "clauses_decided": self.clauses_decided,
            "percent": percent_text(self.percent),
            "rule_details": [r.to_json() for r in self.rules],
            "settings": [c.to_json() for c in self.settings],
        }


@dataclass(frozen=True)
class CoverageReport:
    files: tuple[FileReport, ...]

    @property
    def items(self) -> int:
        return sum(f.items for f in self.files)

    @property
    def covered(self) -> int:
        return sum(f.covered for f in self.files)

    @property
    def percent(self) -> Fraction:
        return Fraction(100) if not self.items else Fraction(100 * self.covered, self.items)

    def below(self, fail_under: Fraction | None) -> bool:
        return fail_under is not None and self.percent < fail_under

    def to_json(self) -> dict[str, Any]:
        return {
            "files": [f.to_json() for f in self.files],
            "rules": sum(len(f.rules) for f in self.files),
            "rules_run": sum(f.rules_run for f in self.files),
            "clauses": sum(len(f.clauses) for f in self.files),
            "clauses_decided": sum(f.clauses_decided for f in self.files),
            "percent": percent_text(self.percent),
        }

    def render(self, *, details: bool = True) -> str:
        """The coverage table, then (``details``) every rule that never ran and every clause
        that never decided anything."""
        lines = ["rule coverage (a rule counts when it ran, a clause when it decided something)"]
        width = max([len("rule file"), len("TOTAL"), *(len(f.file) for f in self.files)])
        lines.append(f"  {'rule file':<{width}} {'rules':>9} {'clauses':>9} {'cover':>7}")
        for f in self.files:
            lines.append(
                f"  {f.file:<{width}} {f'{f.rules_run}/{len(f.rules)}':>9} "
                f"{f'{f.clauses_decided}/{len(f.clauses)}':>9} {percent_text(f.percent):>7}"
            )
        total_rules = sum(len(f.rules) for f in self.files)
        total_clauses = sum(len(f.clauses) for f in self.files)
        run = sum(f.rules_run for f in self.files)
        decided = sum(f.clauses_decided for f in self.files)
        lines.append(
            f"  {'TOTAL':<{width}} {f'{run}/{total_rules}':>9} "
            f"{f'{decided}/{total_clauses}':>9} {percent_text(self.percent):>7}"
        )
        if details:
            for f in self.files:
                for rule in f.rules:
                    counts = ", ".join(f"{c.text} {c.decisions}" for c in rule.clauses if c.covered)
                    state = f"ran {rule.runs}x" if rule.covered else "NEVER RAN"
                    lines.append(f"  {rule.where}: rule {rule.name}: {state}")
                    if counts:
                        lines.append(f"      decided: {counts}")
                    for clause in rule.clauses:
                        if not clause.covered:
                            lines.append(
                                f"      {clause.where}: {clause.kind} {clause.text!r} "
                                "never decided anything"
                            )
                for clause in f.settings:
                    state = (
                        f"decided {clause.decisions}x"
                        if clause.covered
                        else "never decided anything"
                    )
                    lines.append(f"  {clause.where}: setting {clause.text!r}: {state}")
        return "\n".join(lines)


def percent_text(value: Fraction) -> str:
    """``100%``, ``54.5%``: a coverage figure as the report prints it."""
    whole = int(value)
    if value == whole:
        return f"{whole}%"
    return f"{float(value):.1f}%"


def parse_percent(text: str | float | int) -> Fraction:
    """``--fail-under`` as an exact fraction (``"87.5"`` -> 175/2); 0..100."""
    try:
        value = Fraction(str(text).strip().rstrip("%"))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{text!r} is not a percentage (write it like 90 or 87.5)") from None
    if not 0 <= value <= 100:
        raise ValueError(f"{text} is not between 0 and 100")
    return value
