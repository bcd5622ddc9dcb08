"""A scenario file as the runner uses it, and the checks that turn its YAML into that.

This module owns the model of a scenario file (:class:`ScenarioFile`, its
:class:`Scenario` list, each one's :class:`Step` list and :class:`Expect`), the
keys each part of a file may have, and :func:`parse_scenario_text`, which reads
a file's text (through :mod:`paysplit.scenario_yaml`) and checks every part of it.

Every key is checked: an unknown key is an error with its file and line, and a
close known key is suggested, so a typo never passes silently. Amounts and dates
are checked here, where their line is known, so that a scenario never fails
half-way for a mistake that was visible in the file.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from paysplit.ledger import Charge, Payment
from paysplit.money import Cents, MoneyError, parse_amount
from paysplit.scenario_yaml import (
    Items,
    Mark,
    Node,
    Number,
    ScenarioText,
    describe,
    index_lines,
    plain,
    quote,
)

__all__ = [
    "AMOUNT_KEYS",
    "BALANCE_FIGURES",
    "CREDIT_KEYS",
    "SPLIT_KEYS",
    "STEP_KINDS",
    "Expect",
    "ExpectedRecord",
    "Scenario",
    "ScenarioFile",
    "Step",
    "parse_scenario_text",
    "shown_path",
]

STEP_KINDS = (
    "post_payment",
    "post_charge",
    "apply",
    "allocate",
    "refund",
    "unallocate",
    "void",
)
"""The operations a scenario step may name, as ``docs/scenarios.md`` lists them."""

BALANCE_FIGURES = (
    "total_paid",
    "allocated",
    "unallocated",
    "responsibility",
    "statement_balance",
    "total_balance",
)
"""The dashboard figures (000) ``expect.balances`` may check, per patient or account."""

SPLIT_KEYS = ("id", "payment", "charge", "installment", "amount", "transfer", "reverses")
"""The keys an expected split may have, in the order a diff shows them."""

CREDIT_KEYS = ("payment", "amount", "due_to", "memo", "provider", "office")
"""The keys an expected credit may have, in the order a diff shows them."""

AMOUNT_KEYS = {"amount"}
"""The keys of an expected split or credit that hold an amount (compared as cents)."""


def shown_path(path: str | Path) -> str:
    """A path as people read it: relative to the working folder when it is inside it."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return absolute.as_posix()


# -- the model -----------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One operation of a scenario, as written."""

    kind: str
    args: Mapping[str, Any]
    """The step's arguments: plain values, numbers as their text."""
    rule: str | None
    """The rule the step runs (``apply`` / ``post_payment``): the step's, else the scenario's."""
    line: int
    key_lines: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ExpectedRecord:
    """One expected split or credit: only the keys written are compared."""

    fields: Mapping[str, str | Cents | None]
    line: int


@dataclass(frozen=True)
class Expect:
    """What the last step must have produced; None means "not checked"."""

    line: int
    splits: tuple[ExpectedRecord, ...] | None = None
    credits: tuple[ExpectedRecord, ...] | None = None
    unallocated: Mapping[str, Cents] | None = None
    balances: Mapping[str, Mapping[str, Cents]] | None = None
    warnings: tuple[str, ...] | None = None
    blocked: str | Literal[False] | None = None
    """A substring of the reason, ``False`` for "must not be blocked", None unchecked."""
    error: str | None = None
    key_lines: Mapping[str, int] = field(default_factory=dict)

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


@dataclass(frozen=True)
class Scenario:
    name: str
    file: str
    """The scenario file, as shown to people."""
    line: int
    steps: tuple[Step, ...]
    expect: Expect
    description: str = ""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class ScenarioFile:
    path: Path
    """The file, absolute."""
    shown: str
    rules: tuple[Path, ...]
    """Rule files, absolute (written relative to the scenario file)."""
    rules_line: int
    ledger_path: Path | None
    ledger_document: Mapping[str, Any] | None
    ledger_line: int
    as_of: dt.date | None
    scenarios: tuple[Scenario, ...]
    description: str = ""
    ledger_lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)
    """For an inline ledger: the line of every record and field, by its JSON path
    (``accounts[0].charges[3].amount``), so that a ledger problem gets its line."""

    @property
    def rule_paths_shown(self) -> tuple[str, ...]:
        return tuple(shown_path(p) for p in self.rules)


# -- the keys each part of a file may have -------------------------------------
_FILE_KEYS = {
    "rules": "the rule files under test, relative to this file",
    "ledger": "a ledger file (relative to this file) or an inline ledger mapping",
    "as_of": "the run date (YYYY-MM-DD); default: the ledger's as_of",
    "scenarios": "the list of scenarios",
    "description": "free text",
}
_SCENARIO_KEYS = {
    "name": "what the scenario shows",
    "steps": "a list of steps, run in order on the same ledger",
    "rule": "the rule that apply and post_payment run",
    "expect": "what the last step must produce",
    "description": "free text",
    **{kind: "a step" for kind in STEP_KINDS},
}
_STEP_ITEM_KEYS = {"rule": "the rule this step runs", **{kind: "a step" for kind in STEP_KINDS}}
_STEP_ARGS: dict[str, tuple[str, ...]] = {
    "post_payment": tuple(Payment.model_fields),
    "post_charge": tuple(Charge.model_fields),
    "apply": ("rule", "payment", "new_payment", "account", "charges", "as_of"),
    "allocate": ("payment", "charge", "installment", "appointment", "amount"),
    "refund": ("payment", "patient", "amount", "date", "method", "provider", "memo"),
    "unallocate": ("split", "amount"),
    "void": ("payment", "reason"),
}
_EXPECT_KEYS = {
    "splits": "the splits made, in order (listed keys compared)",
    "credits": "the credit annotations set, in order",
    "unallocated": "payment id -> unallocated amount after the steps",
    "balances": "patient (or account) id -> dashboard figures",
    "warnings": "substrings of the plan's warnings, in order",
    "blocked": "a substring of the reason the last step was blocked (false: not blocked)",
    "error": "a substring of the error the last step ended in",
}


def _is_text(value: Any) -> bool:
    # A Number is a str too (it keeps its source text), but where a name or a date
    # is wanted, 12 is not one.
    return isinstance(value, str) and not isinstance(value, Number)


class _Reader(ScenarioText):
    """Checks a loaded scenario file; every error is a ScenarioFileError at a line."""

    # -- shapes ------------------------------------------------------------------
    def mapping(self, value: Any, what: str, mark: Mark) -> Node:
        if not isinstance(value, Node):
            raise self.error(f"{what} must be a mapping (key: value), not {describe(value)}", mark)
        return value

    def items(self, value: Any, what: str, mark: Mark) -> Items:
        if not isinstance(value, Items):
            raise self.error(f"{what} must be a list, not {describe(value)}", mark)
        return value

    def keys(self, node: Node, allowed: Mapping[str, str] | Sequence[str], what: str) -> None:
        known = list(allowed)
        for key in node:
            if key in known:
                continue
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f'did you mean "{close[0]}"?' if close else "known keys: " + ", ".join(known)
            raise self.error(f"unknown key {key!r} in {what}", node.mark_of(key), hint, len(key))

    def text(self, value: Any, what: str, mark: Mark) -> str:
        if isinstance(value, bool) or value is None or not isinstance(value, str):
            raise self.error(f"{what} must be text, not {describe(value)}", mark)
        return str(value)

    def optional_text(self, value: Any, what: str, mark: Mark) -> str | None:
        return None if value is None else self.text(value, what, mark)

    def texts(self, listed: Items, each: str) -> list[str]:
        """Every item of a list, each of which must be text."""
        return [self.text(item, each, listed.mark_of(n)) for n, item in enumerate(listed)]

    def amount(self, value: Any, what: str, mark: Mark) -> Cents:
        if isinstance(value, bool) or not isinstance(value, str):
            raise self.error(f"{what} must be an amount like 12.50, not {describe(value)}", mark)
        try:
            return parse_amount(str(value))
        except MoneyError as exc:
            raise self.error(f"{what}: {exc}", mark) from None

    def date(self, value: Any, what: str, mark: Mark) -> dt.date:
        if _is_text(value):
            try:
                if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value.strip()):
                    return dt.date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise self.error(f"{what} must be a date written YYYY-MM-DD, not {quote(value)}", mark)

    # -- the file ----------------------------------------------------------------
    def read(self, loaded: Any, path: Path) -> ScenarioFile:
        top = self.mapping(loaded, "a scenario file", (1, 1))
        self.keys(top, _FILE_KEYS, "the scenario file")
        for required in ("rules", "ledger", "scenarios"):
            if required not in top:
                raise self.error(
                    f"a scenario file needs {required!r} ({_FILE_KEYS[required]})",
                    (top.line, top.column),
                )
        folder = path.parent
        rules_value = top["rules"]
        rules_mark = top.mark_of("rules")
        names: list[str]
        if _is_text(rules_value):
            names = [rules_value]
        else:
            names = self.texts(self.items(rules_value, "rules", rules_mark), "each rule file")
        if not names:
            raise self.error("rules lists no rule file", rules_mark)
        rules = tuple(Path(os.path.normpath(folder / name)) for name in names)
        ledger_value = top["ledger"]
        ledger_mark = top.mark_of("ledger")
        ledger_path: Path | None = None
        ledger_document: Mapping[str, Any] | None = None
        ledger_lines: dict[str, int] = {}
        if isinstance(ledger_value, Node):
            ledger_document = plain(ledger_value)
            index_lines(ledger_value, "", ledger_lines)
        elif _is_text(ledger_value):
            ledger_path = Path(os.path.normpath(folder / ledger_value))
        else:
            raise self.error(
                f"ledger must be a file name or a ledger mapping, not {describe(ledger_value)}",
                ledger_mark,
            )
        as_of = None
        if "as_of" in top and top["as_of"] is not None:
            as_of = self.date(top["as_of"], "as_of", top.mark_of("as_of"))
        description = self.optional_text(
            top.get("description"), "description", top.mark_of("description")
        )
        listed = self.items(top["scenarios"], "scenarios", top.mark_of("scenarios"))
        if not listed:
            raise self.error("scenarios lists no scenario", top.mark_of("scenarios"))
        scenarios: list[Scenario] = []
        names_seen: dict[str, int] = {}
        for index, item in enumerate(listed):
            scenario = self.scenario(item, listed.mark_of(index))
            if scenario.name in names_seen:
                raise self.error(
                    f"two scenarios are named {scenario.name!r} (the first on line "
                    f"{names_seen[scenario.name]})",
                    (scenario.line, 1),
                    "give each scenario its own name: test reports use it",
                )
            names_seen[scenario.name] = scenario.line
            scenarios.append(scenario)
        return ScenarioFile(
            path=path,
            shown=self.shown,
            rules=rules,
            rules_line=rules_mark[0],
            ledger_path=ledger_path,
            ledger_document=ledger_document,
            ledger_line=ledger_mark[0],
            ledger_lines=ledger_lines,
            as_of=as_of,
            scenarios=tuple(scenarios),
            description=description or "",
        )

    def scenario(self, value: Any, mark: Mark) -> Scenario:
        node = self.mapping(value, "a scenario", mark)
        self.keys(node, _SCENARIO_KEYS, "a scenario")
        if "name" not in node:
            raise self.error("a scenario needs a name", (node.line, node.column))
        name = self.text(node["name"], "name", node.mark_of("name")).strip()
        if not name:
            raise self.error("a scenario's name cannot be empty", node.mark_of("name"))
        rule = self.optional_text(node.get("rule"), "rule", node.mark_of("rule"))
        written = [kind for kind in STEP_KINDS if kind in node]
        steps: list[Step] = []
        if "steps" in node:
            if written:
                raise self.error(
                    f"a scenario has either one step ({written[0]}) or steps:, not both",
                    node.mark_of(written[0]),
                )
            listed = self.items(node["steps"], "steps", node.mark_of("steps"))
            if not listed:
                raise self.error("steps lists no step", node.mark_of("steps"))
            for index, item in enumerate(listed):
                step_node = self.mapping(item, "a step", listed.mark_of(index))
                self.keys(step_node, _STEP_ITEM_KEYS, "a step")
                kinds = [kind for kind in STEP_KINDS if kind in step_node]
                if len(kinds) != 1:
                    raise self.error(
                        "each item of steps names exactly one of " + ", ".join(STEP_KINDS),
                        (step_node.line, step_node.column),
                    )
                step_rule = self.optional_text(
                    step_node.get("rule"), "rule", step_node.mark_of("rule")
                )
                steps.append(self.step(step_node, kinds[0], step_rule or rule))
        else:
            if len(written) != 1:
                problem = "no step" if not written else "more than one step"
                raise self.error(
                    f"scenario {name!r} has {problem}: give one of "
                    + ", ".join(STEP_KINDS)
                    + ", or a list under steps:",
                    (node.line, node.column),
                )
            steps.append(self.step(node, written[0], rule))
        expect_value = node.get("expect")
        expect = (
            Expect(line=node.line)
            if expect_value is None
            else self.expect(expect_value, node.mark_of("expect"))
        )
        description = self.optional_text(
            node.get("description"), "description", node.mark_of("description")
        )
        return Scenario(
            name=name,
            file=self.shown,
            line=node.line,
            steps=tuple(steps),
            expect=expect,
            description=description or "",
        )

    def step(self, holder: Node, kind: str, rule: str | None) -> Step:
        mark = holder.mark_of(kind)
        args = self.mapping(holder[kind], kind, mark)
        self.keys(args, _STEP_ARGS[kind], kind)
        for key in ("as_of", "date"):
            if key in args and kind in ("apply", "refund") and args[key] is not None:
                self.date(args[key], f"{kind}.{key}", args.mark_of(key))
        if "amount" in args and kind in ("allocate", "refund", "unallocate"):
            self.amount(args["amount"], f"{kind}.amount", args.mark_of("amount"))
        if kind == "apply" and "charges" in args:
            charges = self.items(args["charges"], "apply.charges", args.mark_of("charges"))
            self.texts(charges, "each charge")
        if kind == "apply" and "new_payment" in args:
            inner = self.mapping(
                args["new_payment"], "apply.new_payment", args.mark_of("new_payment")
            )
            self.keys(inner, _STEP_ARGS["post_payment"], "apply.new_payment")
        step_rule = rule
        if kind == "apply" and args.get("rule") is not None:
            step_rule = self.text(args["rule"], "apply.rule", args.mark_of("rule"))
        return Step(
            kind=kind,
            args=plain(args),
            rule=step_rule,
            line=mark[0],
            key_lines={key: args.line_of(key) for key in args},
        )

    def expect(self, value: Any, mark: Mark) -> Expect:
        node = self.mapping(value, "expect", mark)
        self.keys(node, _EXPECT_KEYS, "expect")
        values: dict[str, Any] = {}
        if "splits" in node:
            values["splits"] = self.records(node, "splits", SPLIT_KEYS)
        if "credits" in node:
            values["credits"] = self.records(node, "credits", CREDIT_KEYS)
        if "unallocated" in node:
            figures = self.mapping(node["unallocated"], "unallocated", node.mark_of("unallocated"))
            values["unallocated"] = {
                key: self.amount(figures[key], f"unallocated of {key}", figures.mark_of(key))
                for key in figures
            }
        if "balances" in node:
            table = self.mapping(node["balances"], "balances", node.mark_of("balances"))
            balances: dict[str, dict[str, Cents]] = {}
            for who in table:
                row = self.mapping(table[who], f"balances of {who}", table.mark_of(who))
                self.keys(row, BALANCE_FIGURES, f"balances of {who}")
                balances[who] = {
                    figure: self.amount(row[figure], f"{who} {figure}", row.mark_of(figure))
                    for figure in row
                }
            values["balances"] = balances
        if "warnings" in node:
            listed = self.items(node["warnings"], "warnings", node.mark_of("warnings"))
            values["warnings"] = tuple(self.texts(listed, "each warning"))
        if "blocked" in node:
            blocked = node["blocked"]
            if blocked is False:
                values["blocked"] = False
            else:
                values["blocked"] = self.text(
                    blocked, "blocked (a part of the reason, or false)", node.mark_of("blocked")
                )
        if "error" in node:
            values["error"] = self.text(node["error"], "error", node.mark_of("error"))
        return Expect(
            line=node.line if node else mark[0],
            key_lines={key: node.line_of(key) for key in node},
            **values,
        )

    def records(self, node: Node, key: str, allowed: Sequence[str]) -> tuple[ExpectedRecord, ...]:
        listed = self.items(node[key], key, node.mark_of(key))
        records: list[ExpectedRecord] = []
        for index, item in enumerate(listed):
            record = self.mapping(item, f"each of {key}", listed.mark_of(index))
            self.keys(record, allowed, f"an expected {key[:-1]}")
            if not record:
                raise self.error(f"an expected {key[:-1]} lists no key", listed.mark_of(index))
            fields: dict[str, str | Cents | None] = {}
            for name in allowed:
                if name not in record:
                    continue
                if name in AMOUNT_KEYS:
                    fields[name] = self.amount(record[name], f"{key}.{name}", record.mark_of(name))
                else:
                    fields[name] = self.optional_text(
                        record[name], f"{key}.{name}", record.mark_of(name)
                    )
            records.append(ExpectedRecord(fields=fields, line=listed.mark_of(index)[0]))
        return tuple(records)


def parse_scenario_text(text: str, path: str | Path) -> ScenarioFile:
    """Read a scenario file's text (``path`` names it and anchors its relative paths)."""
    absolute = Path(os.path.abspath(path))
    reader = _Reader(shown_path(absolute), text)
    return reader.read(reader.document(), absolute)
