"""What a scenario's last step did against what the scenario expected, as a person reads it.

This module owns checking ``expect`` (:func:`check_expectations`, each difference
a :class:`Mismatch` at the line of the scenario file that said otherwise) and
:class:`ScenarioResult`, whose :meth:`~ScenarioResult.render` is what a person
reads when a scenario fails: its file and line, a small diff of what was
expected against what came out, and the plan of the last step with its trace.

What ``expect`` checks (keys left out are not checked): ``splits`` and
``credits``, all of them in order, only the keys written compared;
``unallocated`` (payment id -> amount, read from the ledger after the steps);
``balances`` (patient or account id -> dashboard figures); ``warnings`` (in
order, each a part of the message); ``blocked`` (a part of the reason, or
``false``); ``error`` (a part of the error the last step ended in).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from paysplit.errors import PaysplitError
from paysplit.ledger import Ledger
from paysplit.money import Cents, format_cents
from paysplit.plans import Plan
from paysplit.scenario_file import (
    AMOUNT_KEYS,
    CREDIT_KEYS,
    SPLIT_KEYS,
    Expect,
    ExpectedRecord,
    Scenario,
)
from paysplit.scenario_steps import StepOutcome, unallocated_amounts

__all__ = ["Mismatch", "ScenarioResult", "check_expectations", "with_clause"]


@dataclass(frozen=True)
class Mismatch:
    """One thing that came out differently from what the scenario said."""

    line: int
    title: str
    diff: tuple[str, ...] = ()


@dataclass
class ScenarioResult:
    scenario: Scenario
    mismatches: list[Mismatch] = field(default_factory=list)
    steps: list[StepOutcome] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.mismatches

    @property
    def last(self) -> StepOutcome | None:
        return self.steps[-1] if self.steps else None

    def render(self) -> str:
        """The failure as a person reads it: where, what differs, and the plan's trace."""
        scenario = self.scenario
        if self.passed:
            return f"{scenario.where}: scenario {scenario.name!r} passed"
        lines = [f"{scenario.where}: scenario {scenario.name!r} failed"]
        for mismatch in self.mismatches:
            lines.append(f"  {scenario.file}:{mismatch.line}: {mismatch.title}")
            lines.extend(f"      {row}" for row in mismatch.diff)
        for outcome in self.steps[:-1]:
            lines.append(f"  {outcome.label}: {_summary(outcome)}")
        if self.last is not None:
            lines.extend(_plan_lines(self.last))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        last = self.last
        return {
            "file": self.scenario.file,
            "line": self.scenario.line,
            "name": self.scenario.name,
            "passed": self.passed,
            "failures": [
                {"line": m.line, "message": m.title, "diff": list(m.diff)} for m in self.mismatches
            ],
            "plan": None if last is None or last.plan is None else last.plan.to_json(),
        }


def with_clause(text: str, clause: str | None) -> str:
    """A reason or warning followed by the clause that gave it, when there is one."""
    return f"{text} ({clause})" if clause else text


# -- the plan of a step, for a person ----------------------------------------------------
def _summary(outcome: StepOutcome) -> str:
    if outcome.error is not None:
        return f"error: {outcome.error}"
    plan = outcome.plan
    if plan is None:
        return "did not run"
    if plan.blocked is not None:
        return f"blocked: {plan.blocked.reason}"
    parts = [f"{len(plan.splits)} split(s)"]
    if plan.credits:
        parts.append(f"{len(plan.credits)} credit(s)")
    if plan.payments:
        parts.append(f"{len(plan.payments)} payment(s)")
    if plan.voids:
        parts.append(f"{len(plan.voids)} void(s)")
    if plan.warnings:
        parts.append(f"{len(plan.warnings)} warning(s)")
    return ", ".join(parts)


def _plan_lines(outcome: StepOutcome) -> list[str]:
    lines = [f"  {outcome.label}: {_summary(outcome)}"]
    plan = outcome.plan
    if plan is None:
        return lines
    if plan.rule:
        lines.append(f"    rule: {plan.rule}")
    if plan.blocked is not None:
        lines.append(f"    blocked: {with_clause(plan.blocked.reason, plan.blocked.clause)}")
    for split in plan.splits:
        lines.append(f"    split {_split_text(split)}")
    for credit in plan.credits:
        lines.append(
            f"    credit {credit.payment} {format_cents(credit.amount)} due to {credit.due_to}"
            f" ({credit.memo})"
        )
    for warning in plan.warnings:
        lines.append(f"    warning: {with_clause(warning.message, warning.clause)}")
    if plan.trace:
        lines.append("    trace:")
        width = max(len(entry.target) for entry in plan.trace)
        for entry in plan.trace:
            used = "used   " if entry.used else "skipped"
            source = f"{entry.source} -> " if entry.source else ""
            where = f"  [{entry.clause}]" if entry.clause else ""
            lines.append(
                f"      {entry.target:<{width}}  {used} {format_cents(entry.amount):>9}  "
                f"{source}{entry.reason}{where}"
            )
    return lines


def _split_text(split: Any) -> str:
    target = split.charge if split.installment is None else f"{split.installment}/{split.charge}"
    extra = ""
    if split.transfer:
        extra += f" transfer {split.transfer}"
    if split.reverses:
        extra += f" reverses {split.reverses}"
    return f"{split.id}: {split.payment} -> {target} {format_cents(split.amount)}{extra}"


# -- what expect says against what came out -------------------------------------------------
_DEFAULT_SPLIT_KEYS = ("payment", "charge", "installment", "amount")
"""What a split made beyond those expected shows in a diff (it has no expected keys)."""
_DEFAULT_CREDIT_KEYS = ("payment", "amount", "due_to")
"""What a credit made beyond those expected shows in a diff."""


def check_expectations(expect: Expect, last: StepOutcome) -> list[Mismatch]:
    """Everything the last step did differently from ``expect``; empty when it all holds."""
    if last.error is not None:
        # The runner only gets here with a failed step when expect.error was given.
        assert expect.error is not None
        if expect.error in str(last.error):
            return []
        return [
            Mismatch(
                expect.line_of("error"),
                "expect.error differs",
                _diff([f"... {expect.error} ..."], [str(last.error)]),
            )
        ]
    found: list[Mismatch | None] = []
    if expect.error is not None:
        found.append(
            Mismatch(
                expect.line_of("error"),
                f"expected the last step to fail with an error containing "
                f"{expect.error!r}; it succeeded",
            )
        )
    plan = last.plan
    assert plan is not None
    found.append(_blocked_differs(expect, plan))
    records = (
        ("splits", expect.splits, plan.splits, SPLIT_KEYS, _DEFAULT_SPLIT_KEYS),
        ("credits", expect.credits, plan.credits, CREDIT_KEYS, _DEFAULT_CREDIT_KEYS),
    )
    for what, expected, made, order, default_keys in records:
        if expected is not None:
            found.append(
                _compare_records(what, expected, made, order, default_keys, expect.line_of(what))
            )
    if expect.unallocated is not None:
        actual = unallocated_amounts(last.ledger, expect.unallocated)
        found.append(
            _compare_figures(
                "unallocated", expect.unallocated, actual, expect.line_of("unallocated")
            )
        )
    if expect.balances is not None:
        expected_rows, actual_rows = _balance_rows(last.ledger, expect.balances)
        found.append(
            _compare_figures("balances", expected_rows, actual_rows, expect.line_of("balances"))
        )
    if expect.warnings is not None:
        found.append(_warnings_differ(expect.warnings, plan, expect.line_of("warnings")))
    return [mismatch for mismatch in found if mismatch is not None]


def _blocked_differs(expect: Expect, plan: Plan) -> Mismatch | None:
    if not isinstance(expect.blocked, str):
        return None
    if plan.blocked is None:
        return Mismatch(
            expect.line_of("blocked"),
            f"expected the last step to be blocked ({expect.blocked!r}); it was not blocked",
        )
    if expect.blocked not in plan.blocked.reason:
        return Mismatch(
            expect.line_of("blocked"),
            "expect.blocked differs: the reason does not contain the expected text",
            _diff([f"... {expect.blocked} ..."], [plan.blocked.reason]),
        )
    return None


def _warnings_differ(expected: Sequence[str], plan: Plan, line: int) -> Mismatch | None:
    messages = [w.message for w in plan.warnings]
    matches = len(messages) == len(expected) and all(
        wanted in message for wanted, message in zip(expected, messages, strict=True)
    )
    if matches:
        return None
    return Mismatch(
        line,
        f"expect.warnings differs ({len(expected)} expected, "
        f"{len(messages)} given; each expected text must be part of the "
        "warning in the same place)",
        _diff([f"... {w} ..." for w in expected], messages),
    )


def _balance_rows(
    ledger: Ledger, balances: Mapping[str, Mapping[str, Cents]]
) -> tuple[dict[str, Cents], dict[str, Cents | None]]:
    """Expected and actual dashboard figures, one row each ("P1 statement_balance")."""
    expected_rows: dict[str, Cents] = {}
    actual_rows: dict[str, Cents | None] = {}
    for who, row in balances.items():
        board = _dashboard(ledger, who)
        for figure, value in row.items():
            expected_rows[f"{who} {figure}"] = value
            actual_rows[f"{who} {figure}"] = None if board is None else int(getattr(board, figure))
    return expected_rows, actual_rows


def _dashboard(ledger: Ledger, who: str) -> Any:
    from paysplit.reports import dashboard

    try:
        if any(p.id == who for a in ledger.accounts for p in a.patients):
            return dashboard(ledger, patient_id=who)
        if ledger.account(who) is not None:
            return dashboard(ledger, account_id=who)
    except PaysplitError:
        return None
    return None


def _flow(fields: Mapping[str, str | Cents | None], order: Sequence[str]) -> str:
    parts = []
    for key in order:
        if key not in fields:
            continue
        value = fields[key]
        if key in AMOUNT_KEYS and isinstance(value, int):
            parts.append(f'{key}: "{format_cents(value)}"')
        elif value is None:
            parts.append(f"{key}: null")
        else:
            parts.append(f"{key}: {value}")
    return "{" + ", ".join(parts) + "}"


def _actual_fields(record: Any, keys: Sequence[str]) -> dict[str, str | Cents | None]:
    out: dict[str, str | Cents | None] = {}
    for key in keys:
        value = getattr(record, key, None)
        out[key] = value if value is None or isinstance(value, int | str) else str(value)
    return out


def _diff(expected: Sequence[str], actual: Sequence[str]) -> tuple[str, ...]:
    """A compact line diff: ``-`` expected only, ``+`` actual only, blank both."""
    out: list[str] = []
    matcher = difflib.SequenceMatcher(a=list(expected), b=list(actual), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.extend(f"  {line}" for line in expected[i1:i2])
            continue
        out.extend(f"- {line}" for line in expected[i1:i2])
        out.extend(f"+ {line}" for line in actual[j1:j2])
    if not expected and not actual:
        out.append("  (none)")
    return ("--- expected", "+++ actual", *out)


def _compare_records(
    what: str,
    expected: Sequence[ExpectedRecord],
    actual: Sequence[Any],
    order: Sequence[str],
    default_keys: Sequence[str],
    line: int,
) -> Mismatch | None:
    expected_text = [_flow(record.fields, order) for record in expected]
    actual_text = []
    for index, record in enumerate(actual):
        # Only the keys written are compared; a record made beyond those expected
        # shows its default keys, so the diff says what it was.
        keys = list(expected[index].fields) if index < len(expected) else list(default_keys)
        actual_text.append(_flow(_actual_fields(record, keys), order))
    if expected_text == actual_text:
        return None
    count = f"{len(expected)} expected, {len(actual)} made"
    first = next(
        (
            n
            for n, pair in enumerate(zip(expected_text, actual_text, strict=False))
            if pair[0] != pair[1]
        ),
        min(len(expected_text), len(actual_text)),
    )
    if first < len(expected):
        line = expected[first].line
        count += f"; the first difference is the {_ordinal(first + 1)} {what[:-1]}"
    return Mismatch(line, f"expect.{what} differs ({count})", _diff(expected_text, actual_text))


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _compare_figures(
    what: str, expected: Mapping[str, Cents], actual: Mapping[str, Cents | None], line: int
) -> Mismatch | None:
    expected_text = [f"{key}: {format_cents(value)}" for key, value in expected.items()]
    actual_text = [
        f"{key}: {'(unknown)' if actual.get(key) is None else format_cents(actual[key] or 0)}"
        for key in expected
    ]
    if expected_text == actual_text:
        return None
    return Mismatch(line, f"expect.{what} differs", _diff(expected_text, actual_text))
