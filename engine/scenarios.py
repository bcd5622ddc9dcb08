"""Scenario files: rule files tested like code, by the pytest plugin and ``paysplit test``.

A scenario file (``*.scenario.yaml``, ``docs/scenarios.md``) names rule files,
a ledger and a run date, then scenarios: each posts, applies, allocates,
refunds, unallocates or voids on a fresh copy of that ledger, and says what
must come out::

    rules: [../smile.rules]
    ledger: ../examples/ledgers/smith_family.json     # or an inline mapping
    as_of: 2025-03-01
    scenarios:
      - name: a part payment pays the oldest due-patient charge first
        post_payment: {id: PAY9, patient: P1, payer: patient, date: 2025-03-01, amount: 150.00}
        rule: due_patient
        expect:
          splits: [{charge: C1, amount: "100.00"}, {charge: C2, amount: "50.00"}]
          unallocated: {PAY9: "0.00"}

This module is the one engine behind both faces: :class:`ScenarioSession`
loads files (:func:`load_scenario_file`), compiles their rules once, runs each
scenario and returns a :class:`ScenarioResult` whose :meth:`~ScenarioResult.render`
is what a person reads when one fails: the scenario's file and line, a small
diff of what was expected against what came out, and the plan's trace.

The YAML is read so that no number ever becomes a float: every number keeps
the text it was written with (``150.00`` is exactly 150.00, ``12.345`` is an
error, never 12.35), dates stay text until they are parsed as dates, and only
``true``/``false`` are booleans (``no`` and ``off`` are words). Every key is
checked: an unknown or repeated key is an error with its file and line, and a
close known key is suggested, so a typo never passes silently.

What ``expect`` checks (keys left out are not checked): ``splits`` and
``credits``, all of them in order, only the keys written compared;
``unallocated`` (payment id -> amount, read from the ledger after the steps);
``balances`` (patient or account id -> dashboard figures); ``warnings`` (in
order, each a part of the message); ``blocked`` (a part of the reason, or
``false``); ``error`` (a part of the error the last step ended in). A step
that is blocked or fails is a failure unless it is the last one and
``expect`` says ``blocked`` / ``error``.

After every step, whatever ``expect`` says, the runner checks the invariants
of ``docs/semantics.md`` (:func:`paysplit.invariants.check_invariants`), that
the ledger read back after applying the plan shows the unallocated amounts
the plan predicted, that every transfer's legs net to zero, and that the
ledger survives being written and read again.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import yaml

from paysplit.apply import apply_plan
from paysplit.errors import Diagnostic, LedgerError, PaysplitError, UsageError
from paysplit.figures import AccountFigures
from paysplit.ledger import Charge, Ledger, Payment
from paysplit.money import Cents, JsonNumber, MoneyError, format_cents, parse_amount
from paysplit.plans import Plan
from paysplit.rules import RuleSet

if TYPE_CHECKING:
    from paysplit.plugin_manager import PluginSet

__all__ = [
    "BALANCE_FIGURES",
    "STEP_KINDS",
    "SUFFIX",
    "Expect",
    "ExpectedRecord",
    "InlineLedgerError",
    "Mismatch",
    "Number",
    "Scenario",
    "ScenarioFile",
    "ScenarioFileError",
    "ScenarioResult",
    "ScenarioSession",
    "Step",
    "StepOutcome",
    "discover",
    "load_scenario_file",
    "parse_scenario_text",
    "shown_path",
]

SUFFIX = ".scenario.yaml"
"""What a scenario file's name ends with."""

MAX_FILE_BYTES = 4_000_000
"""A scenario file larger than this is refused: it is a mistake, not a test."""

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


def shown_path(path: str | Path) -> str:
    """A path as people read it: relative to the working folder when it is inside it."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return absolute.as_posix()


# =============================================================================
# Errors
# =============================================================================
class ScenarioFileError(PaysplitError):
    """A scenario file that cannot be used: one clear error with its file and line."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        self.diagnostic = diagnostic
        super().__init__(f"{diagnostic.file}:{diagnostic.line}: {diagnostic.message}")

    @property
    def file(self) -> str:
        return self.diagnostic.file

    @property
    def line(self) -> int:
        return self.diagnostic.line

    def render(self) -> str:
        return self.diagnostic.render()

    def to_json(self) -> dict[str, Any]:
        return {"errors": [self.diagnostic.to_json()]}


# =============================================================================
# YAML that keeps numbers as written and remembers where everything is
# =============================================================================
class Number(JsonNumber):
    """A number in a scenario file, kept as the text it was written with."""

    __slots__ = ()


class Node(dict[str, Any]):
    """A YAML mapping that remembers its line and the line of each key."""

    line: int = 0
    column: int = 0
    key_marks: dict[str, tuple[int, int]]

    def line_of(self, key: str) -> int:
        return self.key_marks.get(key, (self.line, self.column))[0]

    def mark_of(self, key: str) -> tuple[int, int]:
        return self.key_marks.get(key, (self.line, self.column))


class Items(list[Any]):
    """A YAML sequence that remembers its line and each item's line."""

    line: int = 0
    column: int = 0
    item_marks: list[tuple[int, int]]

    def mark_of(self, index: int) -> tuple[int, int]:
        if 0 <= index < len(self.item_marks):
            return self.item_marks[index]
        return (self.line, self.column)


class _YamlProblem(Exception):
    def __init__(self, message: str, mark: Any, hint: str = "") -> None:
        super().__init__(message)
        self.mark = mark
        self.hint = hint


_DROPPED_TAGS = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}
_NUMBER_TAG = "tag:paysplit,2025:number"
_NUMBER = re.compile(
    r"^(?:[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, minus every implicit conversion that could change a value:
    numbers stay text (:class:`Number`), dates stay text, and only true/false are booleans."""


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _construct_number(loader: _Loader, node: yaml.Node) -> Number:
    assert isinstance(node, yaml.ScalarNode)
    return Number(loader.construct_scalar(node))


def _construct_text(loader: _Loader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


def _construct_map(loader: _Loader, node: yaml.Node) -> Iterator[Node]:
    assert isinstance(node, yaml.MappingNode)
    data = Node()
    data.line, data.column = _mark(node)
    data.key_marks = {}
    yield data
    explicit = [key_node for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge"]
    explicit_ids = {id(key_node) for key_node in explicit}
    loader.flatten_mapping(node)
    seen: dict[str, tuple[int, int]] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, bool) or key is None or not isinstance(key, str):
            raise _YamlProblem(
                f"a key must be text, not {key!r}", key_node.start_mark, "quote the key"
            )
        key = str(key)
        if id(key_node) in explicit_ids:
            if key in seen:
                first = seen[key][0]
                raise _YamlProblem(
                    f"key {key!r} is given twice in this mapping (first on line {first})",
                    key_node.start_mark,
                    "remove one of them: YAML would silently keep only the last",
                )
            seen[key] = _mark(key_node)
        data.key_marks[key] = _mark(key_node)
        data[key] = loader.construct_object(value_node, deep=True)


def _construct_seq(loader: _Loader, node: yaml.Node) -> Iterator[Items]:
    assert isinstance(node, yaml.SequenceNode)
    data = Items()
    data.line, data.column = _mark(node)
    data.item_marks = [_mark(child) for child in node.value]
    yield data
    data.extend(loader.construct_object(child, deep=True) for child in node.value)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.yaml_constructors = dict(yaml.SafeLoader.yaml_constructors)
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
_Loader.add_implicit_resolver(_NUMBER_TAG, _NUMBER, list("-+0123456789."))
_Loader.add_constructor(_NUMBER_TAG, _construct_number)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_number)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_number)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def plain(value: Any) -> Any:
    """A loaded YAML value as plain dicts, lists and text (numbers stay :class:`Number`)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


# =============================================================================
# The model of a scenario file
# =============================================================================
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
_SPLIT_KEYS = ("id", "payment", "charge", "installment", "amount", "transfer", "reverses")
_CREDIT_KEYS = ("payment", "amount", "due_to", "memo", "provider", "office")
_AMOUNT_KEYS = {"amount"}


class _Reader:
    """Checks a loaded scenario file; every error is a ScenarioFileError at a line."""

    def __init__(self, shown: str, text: str) -> None:
        self.shown = shown
        self.lines = text.splitlines()

    def error(
        self, message: str, mark: tuple[int, int], hint: str = "", width: int = 1
    ) -> ScenarioFileError:
        line, column = mark
        source = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return ScenarioFileError(
            Diagnostic(
                file=self.shown,
                line=line,
                column=column,
                message=message,
                hint=hint,
                source_line=source,
                width=max(1, width),
            )
        )

    # -- shapes ------------------------------------------------------------------
    def mapping(self, value: Any, what: str, mark: tuple[int, int]) -> Node:
        if not isinstance(value, Node):
            raise self.error(f"{what} must be a mapping (key: value), not {_kind(value)}", mark)
        return value

    def items(self, value: Any, what: str, mark: tuple[int, int]) -> Items:
        if not isinstance(value, Items):
            raise self.error(f"{what} must be a list, not {_kind(value)}", mark)
        return value

    def keys(self, node: Node, allowed: Mapping[str, str] | Sequence[str], what: str) -> None:
        known = list(allowed)
        for key in node:
            if key in known:
                continue
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f'did you mean "{close[0]}"?' if close else "known keys: " + ", ".join(known)
            raise self.error(f"unknown key {key!r} in {what}", node.mark_of(key), hint, len(key))

    def text(self, value: Any, what: str, mark: tuple[int, int]) -> str:
        if isinstance(value, bool) or value is None or not isinstance(value, str):
            raise self.error(f"{what} must be text, not {_kind(value)}", mark)
        return str(value)

    def optional_text(self, value: Any, what: str, mark: tuple[int, int]) -> str | None:
        return None if value is None else self.text(value, what, mark)

    def amount(self, value: Any, what: str, mark: tuple[int, int]) -> Cents:
        if isinstance(value, bool) or not isinstance(value, str):
            raise self.error(f"{what} must be an amount like 12.50, not {_kind(value)}", mark)
        try:
            return parse_amount(str(value))
        except MoneyError as exc:
            raise self.error(f"{what}: {exc}", mark) from None

    def date(self, value: Any, what: str, mark: tuple[int, int]) -> dt.date:
        if isinstance(value, str) and not isinstance(value, Number):
            try:
                if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
                    return dt.date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise self.error(f"{what} must be a date written YYYY-MM-DD, not {_shown(value)}", mark)

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
        if isinstance(rules_value, str) and not isinstance(rules_value, Number):
            names = [rules_value]
        else:
            listed = self.items(rules_value, "rules", rules_mark)
            names = [
                self.text(item, "each rule file", listed.mark_of(n))
                for n, item in enumerate(listed)
            ]
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
            _index_lines(ledger_value, "", ledger_lines)
        elif isinstance(ledger_value, str) and not isinstance(ledger_value, Number):
            ledger_path = Path(os.path.normpath(folder / ledger_value))
        else:
            raise self.error(
                f"ledger must be a file name or a ledger mapping, not {_kind(ledger_value)}",
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

    def scenario(self, value: Any, mark: tuple[int, int]) -> Scenario:
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
            for n, item in enumerate(charges):
                self.text(item, "each charge", charges.mark_of(n))
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

    def expect(self, value: Any, mark: tuple[int, int]) -> Expect:
        node = self.mapping(value, "expect", mark)
        self.keys(node, _EXPECT_KEYS, "expect")
        values: dict[str, Any] = {}
        if "splits" in node:
            values["splits"] = self.records(node, "splits", _SPLIT_KEYS)
        if "credits" in node:
            values["credits"] = self.records(node, "credits", _CREDIT_KEYS)
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
            values["warnings"] = tuple(
                self.text(item, "each warning", listed.mark_of(n)) for n, item in enumerate(listed)
            )
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
                if name in _AMOUNT_KEYS:
                    fields[name] = self.amount(record[name], f"{key}.{name}", record.mark_of(name))
                else:
                    fields[name] = self.optional_text(
                        record[name], f"{key}.{name}", record.mark_of(name)
                    )
            records.append(ExpectedRecord(fields=fields, line=listed.mark_of(index)[0]))
        return tuple(records)


def _index_lines(value: Any, path: str, into: dict[str, int]) -> None:
    """Record the line of every mapping key and list item under ``value`` by JSON path."""
    pending: list[tuple[Any, str]] = [(value, path)]
    while pending:
        node, at = pending.pop()
        if isinstance(node, Node):
            into.setdefault(at, node.line)
            for key, child in node.items():
                here = f"{at}.{key}" if at else key
                into[here] = node.line_of(key)
                pending.append((child, here))
        elif isinstance(node, Items):
            into.setdefault(at, node.line)
            for index, child in enumerate(node):
                here = f"{at}[{index}]"
                into[here] = node.mark_of(index)[0]
                pending.append((child, here))


def _line_of_path(lines: Mapping[str, int], path: str, default: int) -> int:
    """The line of the deepest part of ``path`` that the file has."""
    probe = path
    while probe:
        if probe in lines:
            return lines[probe]
        cut = max(probe.rfind("."), probe.rfind("["))
        probe = probe[:cut] if cut > 0 else ""
    return default


class InlineLedgerError(PaysplitError):
    """An inline ledger that does not load: every problem, each with its line."""

    def __init__(self, file: str, problems: Sequence[tuple[int, str]]) -> None:
        self.file = file
        self.problems = list(problems)
        first = self.problems[0] if self.problems else (0, "")
        super().__init__(f"{file}:{first[0]}: the ledger cannot be loaded: {first[1]}")

    def render(self) -> str:
        noun = "problem" if len(self.problems) == 1 else "problems"
        lines = [
            f"error: the ledger in {self.file} cannot be loaded ({len(self.problems)} {noun}):"
        ]
        lines += [f"  {self.file}:{line}: {message}" for line, message in self.problems]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "errors": [{"line": line, "message": message} for line, message in self.problems],
        }


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, Number):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {_shown(value)}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _shown(value: Any) -> str:
    text = repr(str(value)) if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_scenario_text(text: str, path: str | Path) -> ScenarioFile:
    """Read a scenario file's text (``path`` names it and anchors its relative paths)."""
    absolute = Path(os.path.abspath(path))
    shown = shown_path(absolute)
    reader = _Reader(shown, text)
    if "\x00" in text:
        raise reader.error("this is not a text file (it holds NUL bytes)", (1, 1))
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))
    except _YamlProblem as problem:
        mark = problem.mark
        raise reader.error(str(problem), (mark.line + 1, mark.column + 1), problem.hint) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = exc.problem or exc.context or "this is not valid YAML"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        raise reader.error(f"not valid YAML: {message}{context}", where) from None
    except yaml.YAMLError as exc:
        raise reader.error(f"not valid YAML: {exc}", (1, 1)) from None
    except RecursionError:
        raise reader.error("the YAML is nested too deeply to be a scenario file", (1, 1)) from None
    if not documents or documents == [None]:
        raise reader.error(
            "the file is empty: a scenario file has rules:, ledger: and scenarios:", (1, 1)
        )
    if len(documents) > 1:
        raise reader.error("a scenario file holds one YAML document, not several", (1, 1))
    return reader.read(documents[0], absolute)


def load_scenario_file(path: str | Path) -> ScenarioFile:
    """Read and check one scenario file; a bad file raises one :class:`ScenarioFileError`."""
    shown = shown_path(path)

    def refuse(message: str) -> ScenarioFileError:
        return ScenarioFileError(Diagnostic(file=shown, line=1, column=1, message=message))

    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise refuse(
                f"the file is {size} bytes; a scenario file is at most {MAX_FILE_BYTES} bytes"
            )
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise refuse("no such scenario file") from None
    except IsADirectoryError:
        raise refuse("is a folder, not a scenario file") from None
    except OSError as exc:
        raise refuse(f"cannot be read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ScenarioFileError(
            Diagnostic(
                file=shown,
                line=line,
                column=1,
                message="the file is not UTF-8 text (is it a binary file?)",
            )
        ) from None
    return parse_scenario_text(text, path)


def discover(paths: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """Scenario files and rule files under ``paths`` (files or folders), sorted.

    A folder is searched recursively (hidden folders, virtualenvs and build
    output are skipped); a file given by name must be a scenario or rule file.
    """
    scenarios: set[Path] = set()
    rule_files: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for root, folders, files in os.walk(path):
                folders[:] = sorted(
                    f
                    for f in folders
                    if not f.startswith(".")
                    and f not in {"node_modules", "__pycache__", "build", "dist"}
                    and not f.endswith(".egg-info")
                )
                for name in files:
                    if name.endswith(SUFFIX):
                        scenarios.add(Path(os.path.abspath(Path(root) / name)))
                    elif name.endswith(".rules"):
                        rule_files.add(Path(os.path.abspath(Path(root) / name)))
        elif path.is_file():
            if path.name.endswith(SUFFIX):
                scenarios.add(Path(os.path.abspath(path)))
            elif path.name.endswith(".rules"):
                rule_files.add(Path(os.path.abspath(path)))
            else:
                raise UsageError(
                    f"{given}: not a scenario file (*{SUFFIX}) or a rule file (*.rules)"
                )
        else:
            raise UsageError(f"{given}: no such file or folder")
    return sorted(scenarios), sorted(rule_files)


# =============================================================================
# Running scenarios
# =============================================================================
@dataclass(frozen=True)
class StepOutcome:
    """What one step did."""

    index: int
    step: Step
    plan: Plan | None
    error: PaysplitError | None
    ledger: Ledger
    """The ledger after the step (unchanged when it was blocked or failed)."""

    @property
    def label(self) -> str:
        return f"step {self.index} ({self.step.kind}, line {self.step.line})"


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
        where = f" ({plan.blocked.clause})" if plan.blocked.clause else ""
        lines.append(f"    blocked: {plan.blocked.reason}{where}")
    for split in plan.splits:
        lines.append(f"    split {_split_text(split)}")
    for credit in plan.credits:
        lines.append(
            f"    credit {credit.payment} {format_cents(credit.amount)} due to {credit.due_to}"
            f" ({credit.memo})"
        )
    for warning in plan.warnings:
        where = f" ({warning.clause})" if warning.clause else ""
        lines.append(f"    warning: {warning.message}{where}")
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


# -- rendering records for a diff -----------------------------------------------
def _flow(fields: Mapping[str, str | Cents | None], order: Sequence[str]) -> str:
    parts = []
    for key in order:
        if key not in fields:
            continue
        value = fields[key]
        if key in _AMOUNT_KEYS and isinstance(value, int):
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


# -- the session -------------------------------------------------------------------
RulesLoader = Callable[[Sequence[str]], RuleSet]
"""Compiles rule files (given as shown paths) into one rule set."""


class StepRecorder(Protocol):
    """What a coverage collector offers the runner (:class:`paysplit.coverage.Coverage`)."""

    def instrument(self, rules: RuleSet) -> RuleSet: ...

    def begin_step(self) -> None: ...

    def end_step(
        self, rules: RuleSet, plan: Plan | None, ledger: Ledger, ran: Sequence[str]
    ) -> None: ...


@dataclass
class Prepared:
    """A scenario file ready to run: its rules compiled and its ledger loaded."""

    file: ScenarioFile
    rules: RuleSet
    ledger: Ledger
    baseline_strict: frozenset[str]


class ScenarioSession:
    """Loads scenario files and runs their scenarios; shared by the pytest plugin and the CLI.

    Plugins are loaded once per session (``disabled`` / ``allowed`` as the CLI's
    ``--disable-plugin`` and ``PAYSPLIT_PLUGINS``); each set of rule files is
    compiled once. With a ``coverage`` collector, the rules run instrumented and
    every step reports which rules ran and which clauses decided something.
    """

    def __init__(
        self,
        *,
        coverage: StepRecorder | None = None,
        disabled: Sequence[str] = (),
        allowed: Sequence[str] | None = None,
        load_rules: RulesLoader | None = None,
    ) -> None:
        self.coverage = coverage
        self.disabled = tuple(disabled)
        self.allowed = None if allowed is None else tuple(allowed)
        self._load_rules = load_rules
        self._plugins: PluginSet | None = None
        self._rules: dict[tuple[str, ...], RuleSet] = {}
        self._prepared: dict[Path, Prepared] = {}

    # -- loading -------------------------------------------------------------------
    @property
    def plugins(self) -> PluginSet:
        """The loaded plugin set (loaded on first use)."""
        if self._plugins is None:
            from paysplit.plugin_manager import load

            allowed = None if self.allowed is None else list(self.allowed)
            self._plugins = load(disabled=list(self.disabled), allowed=allowed)
        return self._plugins

    def compile(self, paths: Sequence[str]) -> RuleSet:
        """Compile rule files into one rule set (cached; instrumented under coverage)."""
        key = tuple(paths)
        cached = self._rules.get(key)
        if cached is not None:
            return cached
        if self._load_rules is not None:
            rules = self._load_rules(list(paths))
        else:
            from paysplit.compiler import load_rules

            rules = load_rules(list(paths), self.plugins)
        if self.coverage is not None:
            rules = self.coverage.instrument(rules)
        self._rules[key] = rules
        return rules

    def load(self, path: str | Path) -> ScenarioFile:
        return load_scenario_file(path)

    def prepare(self, file: ScenarioFile) -> Prepared:
        """Compile the file's rules and load its ledger (once per file)."""
        cached = self._prepared.get(file.path)
        if cached is not None and cached.file == file:
            return cached
        from paysplit.ledger_io import ledger_from_document, load_ledger

        missing = [p for p in file.rules if not p.is_file()]
        if missing:
            raise ScenarioFileError(
                Diagnostic(
                    file=file.shown,
                    line=file.rules_line,
                    column=1,
                    message=f"rule file {shown_path(missing[0])} does not exist",
                    hint="rule files are named relative to the scenario file",
                )
            )
        rules = self.compile(file.rule_paths_shown)
        if file.ledger_path is not None:
            if not file.ledger_path.is_file():
                raise ScenarioFileError(
                    Diagnostic(
                        file=file.shown,
                        line=file.ledger_line,
                        column=1,
                        message=f"ledger file {shown_path(file.ledger_path)} does not exist",
                        hint="the ledger is named relative to the scenario file",
                    )
                )
            ledger = load_ledger(shown_path(file.ledger_path))
        else:
            assert file.ledger_document is not None
            try:
                ledger = ledger_from_document(
                    file.ledger_document, f"{file.shown}:{file.ledger_line} (ledger)"
                )
            except LedgerError as exc:
                raise InlineLedgerError(
                    file.shown,
                    [
                        (
                            _line_of_path(file.ledger_lines, p.path, file.ledger_line),
                            f"ledger.{p.path}: {p.message}" if p.path else p.message,
                        )
                        for p in exc.problems
                    ],
                ) from None
        if file.as_of is not None:
            practice = ledger.practice.model_copy(update={"as_of": file.as_of})
            ledger = ledger.model_copy(update={"practice": practice})
        elif ledger.practice.as_of is None:
            raise ScenarioFileError(
                Diagnostic(
                    file=file.shown,
                    line=file.ledger_line,
                    column=1,
                    message="neither the scenario file (as_of:) nor the ledger "
                    "(practice.as_of) gives a run date",
                    hint="scenarios must not depend on today's date: add as_of: YYYY-MM-DD",
                )
            )
        prepared = Prepared(
            file=file, rules=rules, ledger=ledger, baseline_strict=_strict_problems(ledger)
        )
        self._prepared[file.path] = prepared
        return prepared

    # -- running ---------------------------------------------------------------------
    def run(self, file: ScenarioFile, scenario: Scenario) -> ScenarioResult:
        """Run one scenario from the file's ledger, afresh; never raises for a failure."""
        prepared = self.prepare(file)
        result = ScenarioResult(scenario=scenario)
        ledger = prepared.ledger
        from paysplit.invariants import check_invariants

        broken = check_invariants(ledger)
        if broken:
            result.mismatches.append(
                Mismatch(
                    file.ledger_line,
                    "the scenario file's ledger breaks an invariant before any step",
                    tuple(str(p) for p in broken),
                )
            )
            return result
        strict_before = prepared.baseline_strict
        allowed_negative = False
        count = len(scenario.steps)
        for index, step in enumerate(scenario.steps, start=1):
            outcome = self._step(prepared.rules, ledger, step, index)
            result.steps.append(outcome)
            last = index == count
            if outcome.error is not None:
                if not last or scenario.expect.error is None:
                    result.mismatches.append(
                        Mismatch(step.line, f"step {index} ({step.kind}) failed: {outcome.error}")
                    )
                    return result
                break
            plan = outcome.plan
            assert plan is not None
            if plan.blocked is not None:
                if not last or scenario.expect.blocked in (None, False):
                    result.mismatches.append(
                        Mismatch(
                            step.line,
                            f"step {index} ({step.kind}) was blocked: {plan.blocked.reason}"
                            + (f" ({plan.blocked.clause})" if plan.blocked.clause else ""),
                        )
                    )
                    return result
                break
            allowed_negative = allowed_negative or bool(plan.warnings)
            problems = self._after_step(outcome, strict_before, allowed_negative)
            if problems:
                result.mismatches.append(
                    Mismatch(
                        step.line,
                        f"step {index} ({step.kind}) broke an invariant",
                        tuple(problems),
                    )
                )
                return result
            strict_before = _strict_problems(outcome.ledger)
            ledger = outcome.ledger
        result.mismatches.extend(self._expectations(scenario, result.steps[-1]))
        return result

    def _step(self, rules: RuleSet, ledger: Ledger, step: Step, index: int) -> StepOutcome:
        coverage = self.coverage
        if coverage is not None:
            coverage.begin_step()
        plan: Plan | None = None
        error: PaysplitError | None = None
        try:
            plan = _run_step(ledger, rules, step)
        except PaysplitError as exc:
            error = exc
        after = ledger
        if plan is not None and plan.blocked is None:
            try:
                after = apply_plan(ledger, plan)
            except PaysplitError as exc:
                error, plan = exc, None
        if coverage is not None:
            coverage.end_step(rules, plan, after, _ran_rules(rules, step, plan))
        return StepOutcome(index=index, step=step, plan=plan, error=error, ledger=after)

    def _after_step(
        self,
        outcome: StepOutcome,
        strict_before: frozenset[str],
        allowed_negative: bool,
    ) -> list[str]:
        """The invariants, plus what the plan promised, after one applied step."""
        from paysplit.invariants import check_invariants
        from paysplit.ledger_io import dump_ledger, parse_ledger_text

        plan = outcome.plan
        assert plan is not None
        after = outcome.ledger
        problems = [str(p) for p in check_invariants(after)]
        if not allowed_negative:
            problems += sorted(_strict_problems(after) - strict_before)
        for transfer in plan.transfers:
            total = sum(leg.amount for leg in transfer.legs)
            if total != 0:
                problems.append(
                    f"transfer {transfer.id}: its legs net to {format_cents(total)}, not 0.00"
                )
        figures = {a.id: AccountFigures.of(a) for a in after.accounts}
        for payment_id, predicted in plan.unallocated.items():
            actual = _unallocated(after, figures, payment_id)
            if actual != predicted:
                shown = "nothing" if actual is None else format_cents(actual)
                problems.append(
                    f"the plan said {payment_id} would have {format_cents(predicted)} "
                    f"unallocated; the ledger shows {shown}"
                )
        try:
            reread = parse_ledger_text(dump_ledger(after), "the ledger after the step")
        except PaysplitError as exc:
            problems.append(f"the ledger after the step cannot be read back: {exc}")
        else:
            if reread != after:
                problems.append("the ledger after the step reads back differently once written")
        return problems

    def _expectations(self, scenario: Scenario, outcome: StepOutcome) -> list[Mismatch]:
        expect = scenario.expect
        found: list[Mismatch] = []
        if outcome.error is not None:
            assert expect.error is not None
            if expect.error not in str(outcome.error):
                found.append(
                    Mismatch(
                        expect.line_of("error"),
                        "expect.error differs",
                        _diff([f"... {expect.error} ..."], [str(outcome.error)]),
                    )
                )
            return found
        if expect.error is not None:
            found.append(
                Mismatch(
                    expect.line_of("error"),
                    f"expected the last step to fail with an error containing "
                    f"{expect.error!r}; it succeeded",
                )
            )
        plan = outcome.plan
        assert plan is not None
        if isinstance(expect.blocked, str):
            if plan.blocked is None:
                found.append(
                    Mismatch(
                        expect.line_of("blocked"),
                        f"expected the last step to be blocked ({expect.blocked!r}); "
                        "it was not blocked",
                    )
                )
            elif expect.blocked not in plan.blocked.reason:
                found.append(
                    Mismatch(
                        expect.line_of("blocked"),
                        "expect.blocked differs: the reason does not contain the expected text",
                        _diff([f"... {expect.blocked} ..."], [plan.blocked.reason]),
                    )
                )
        if expect.splits is not None:
            mismatch = _compare_records(
                "splits",
                expect.splits,
                plan.splits,
                _SPLIT_KEYS,
                ("payment", "charge", "installment", "amount"),
                expect.line_of("splits"),
            )
            if mismatch is not None:
                found.append(mismatch)
        if expect.credits is not None:
            mismatch = _compare_records(
                "credits",
                expect.credits,
                plan.credits,
                _CREDIT_KEYS,
                ("payment", "amount", "due_to"),
                expect.line_of("credits"),
            )
            if mismatch is not None:
                found.append(mismatch)
        ledger = outcome.ledger
        if expect.unallocated is not None:
            figures = {a.id: AccountFigures.of(a) for a in ledger.accounts}
            actual = {key: _unallocated(ledger, figures, key) for key in expect.unallocated}
            mismatch = _compare_figures(
                "unallocated", expect.unallocated, actual, expect.line_of("unallocated")
            )
            if mismatch is not None:
                found.append(mismatch)
        if expect.balances is not None:
            expected_rows: dict[str, Cents] = {}
            actual_rows: dict[str, Cents | None] = {}
            for who, row in expect.balances.items():
                board = _dashboard(ledger, who)
                for figure, value in row.items():
                    expected_rows[f"{who} {figure}"] = value
                    actual_rows[f"{who} {figure}"] = (
                        None if board is None else int(getattr(board, figure))
                    )
            mismatch = _compare_figures(
                "balances", expected_rows, actual_rows, expect.line_of("balances")
            )
            if mismatch is not None:
                found.append(mismatch)
        if expect.warnings is not None:
            messages = [w.message for w in plan.warnings]
            matches = len(messages) == len(expect.warnings) and all(
                wanted in message for wanted, message in zip(expect.warnings, messages, strict=True)
            )
            if not matches:
                found.append(
                    Mismatch(
                        expect.line_of("warnings"),
                        f"expect.warnings differs ({len(expect.warnings)} expected, "
                        f"{len(messages)} given; each expected text must be part of the "
                        "warning in the same place)",
                        _diff([f"... {w} ..." for w in expect.warnings], messages),
                    )
                )
        return found


def _strict_problems(ledger: Ledger) -> frozenset[str]:
    """Over-allocated payments and over-paid charges (allowed only with a warning)."""
    from paysplit.invariants import check_invariants

    strict = check_invariants(
        ledger, allow_negative_unallocated=False, allow_overpaid_charges=False
    )
    lenient = {str(p) for p in check_invariants(ledger)}
    return frozenset(str(p) for p in strict if str(p) not in lenient)


def _unallocated(
    ledger: Ledger, figures: Mapping[str, AccountFigures], payment_id: str
) -> Cents | None:
    for account in ledger.accounts:
        for payment in account.payments:
            if payment.id == payment_id:
                return figures[account.id].unallocated(payment)
    return None


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


def _ran_rules(rules: RuleSet, step: Step, plan: Plan | None) -> list[str]:
    """The rules a step ran (for coverage): the plan's, else the one the step asked for."""
    if plan is not None:
        if plan.rule:
            return [name.strip() for name in plan.rule.split(",") if name.strip()]
        return []
    if step.kind in ("apply", "post_payment"):
        name = step.rule or rules.settings.default_rule
        return [name] if name else []
    return []


# -- one step ------------------------------------------------------------------------
def _text(args: Mapping[str, Any], key: str) -> str | None:
    value = args.get(key)
    return None if value is None else str(value)


def _date(args: Mapping[str, Any], key: str) -> dt.date | None:
    value = args.get(key)
    return None if value is None else dt.date.fromisoformat(str(value).strip())


def _run_step(ledger: Ledger, rules: RuleSet, step: Step) -> Plan:
    from paysplit import operations

    args = step.args
    kind = step.kind
    if kind == "post_payment":
        payment = operations.payment_from_json(dict(args), ledger)
        return operations.post_payment(ledger, rules, payment, step.rule)
    if kind == "post_charge":
        charge = operations.charge_from_json(dict(args), ledger)
        return operations.post_charge(ledger, rules, charge)
    if kind == "apply":
        new_payment = None
        if args.get("new_payment") is not None:
            new_payment = operations.payment_from_json(dict(args["new_payment"]), ledger)
        charges = args.get("charges")
        charge_ids = None if charges is None else [str(c) for c in charges]
        payment_id = _text(args, "payment")
        account_id = _text(args, "account")
        if payment_id is None and new_payment is None and account_id is None:
            account_id = _infer_account(ledger, charge_ids)
        return operations.apply_rule(
            ledger,
            rules,
            step.rule,
            payment_id=payment_id,
            new_payment=new_payment,
            account_id=account_id,
            charge_ids=charge_ids,
            as_of=_date(args, "as_of"),
        )
    if kind == "allocate":
        return operations.allocate_manual(
            ledger,
            rules,
            str(args.get("payment")),
            charge_id=_text(args, "charge"),
            installment_id=_text(args, "installment"),
            appointment_id=_text(args, "appointment"),
            amount=str(args.get("amount")),
        )
    if kind == "refund":
        return operations.refund(
            ledger,
            rules,
            payment_id=_text(args, "payment"),
            patient_id=_text(args, "patient"),
            amount=str(args.get("amount")),
            date=_date(args, "date"),
            method=_text(args, "method"),
            provider=_text(args, "provider"),
            memo=_text(args, "memo"),
        )
    if kind == "unallocate":
        amount = args.get("amount")
        return operations.unallocate(
            ledger, str(args.get("split")), None if amount is None else str(amount)
        )
    if kind == "void":
        return operations.void(ledger, str(args.get("payment")), _text(args, "reason"))
    raise UsageError(f"unknown step {kind}")  # pragma: no cover - the reader refuses it


def _infer_account(ledger: Ledger, charge_ids: Sequence[str] | None) -> str:
    """The account an ``apply`` without payment or account means: the selected charges'
    account, else the ledger's only account."""
    if charge_ids:
        for account in ledger.accounts:
            owned = {c.id for c in account.charges} | {
                i.id for plan in account.plans for i in plan.installments
            }
            if charge_ids[0] in owned:
                return account.id
        raise UsageError(f"{charge_ids[0]} is not a charge or installment of the ledger")
    if len(ledger.accounts) == 1:
        return ledger.accounts[0].id
    raise UsageError(
        "apply needs a payment, a new_payment or an account: the ledger has "
        f"{len(ledger.accounts)} accounts"
    )
