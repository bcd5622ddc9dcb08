"""``where`` expressions: the field table, type checking, and compiling to closures.

A ``where`` expression is checked once, when the rules are loaded, against
the fields of ``docs/rule-language.md`` and the loaded plugins' vocabulary,
and becomes a :class:`Condition` (negations pushed down to the comparisons)
and a closure that the allocation core calls per target. Nothing walks a
syntax tree at run time, and no user text is ever evaluated as code (the one
function generated from a condition, :mod:`paysplit.charge_predicates`, is made
from its structure, with every constant passed by name).

A skipped target gets a plain reason, e.g.
``status due_insurance is not due_patient or pending_patient`` or
``patient_balance 0.00 is not more than 0.00``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from typing import Any, Literal, TypeAlias

from paysplit.charge_predicates import predicate_of
from paysplit.ledger import Charge, Payment
from paysplit.money import MoneyError, format_cents, parse_amount
from paysplit.patterns import VocabularyCheck, closest
from paysplit.policy import Filter, Target
from paysplit.syntax import And, Comparison, Expr, Group, Not, Operand, Or, Span

ValueType = Literal[
    "money", "date", "days", "status", "kind", "unearned_type", "payer",
    "charge", "patient", "provider", "office", "appointment", "code", "method",
]  # fmt: skip
ORDERED: frozenset[str] = frozenset({"money", "date", "days"})
ENUMS: dict[str, str] = {"status": "statuses", "kind": "kinds", "unearned_type": "unearned_types"}
"""Enum type -> its vocabulary category; ``payer`` is fixed."""
PAYERS = ("patient", "insurance")

Getter: TypeAlias = Callable[[Any, Payment | None], Any]
"""A field's value: of a :class:`Target` and the payment or, in a filter's charge form
(:data:`CHARGE_FIELDS`), of a :class:`Charge` and the payment."""
Test: TypeAlias = Callable[[Any, Payment | None], str | None]


@dataclass(frozen=True)
class Field:
    name: str
    """As written when qualified: ``status`` or ``payment.payer``."""
    type: ValueType
    get: Getter
    meaning: str


def _charge(attr: str) -> Getter:
    return lambda t, _p: getattr(t.charge, attr)


def _payment(attr: str) -> Getter:
    return lambda _t, p: None if p is None else getattr(p, attr)


def _date(t: Target, _p: Payment | None) -> dt.date:
    return t.installment.due if t.installment is not None else t.charge.date


def _amount(t: Target, _p: Payment | None) -> int:
    return t.installment.amount if t.installment is not None else t.charge.amount


TARGET_FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field("id", "charge", lambda t, _p: t.id, "the charge's (or installment's) id"),
        Field("patient", "patient", _charge("patient"), "the charge's patient"),
        Field("provider", "provider", _charge("provider"), "the charge's provider"),
        Field("office", "office", _charge("office"), "the charge's office"),
        Field("appointment", "appointment", _charge("appointment"), "the charge's appointment"),
        Field("code", "code", _charge("code"), "the procedure code"),
        Field("kind", "kind", _charge("kind"), "procedure, debit, adjustment, ..."),
        Field("status", "status", _charge("status"), "the charge's status"),
        Field("date", "date", _date, "service date (an installment's due date)"),
        Field("age", "days", lambda t, _p: t.age, "days from the service date to the run date"),
        Field("amount", "money", _amount, "the charge's (installment's) amount"),
        Field("balance", "money", lambda t, _p: t.balance, "what is still owed"),
        Field(
            "patient_balance",
            "money",
            lambda t, _p: t.patient_balance,
            "balance less the insurance estimate (never below 0)",
        ),
        Field(
            "insurance_estimate",
            "money",
            _charge("insurance_estimate"),
            "what insurance is still expected to pay",
        ),
    )
}


def _of_charge(attr: str) -> Getter:
    return lambda c, _p: getattr(c, attr)


CHARGE_FIELDS: dict[str, Field] = {
    name: Field(name, field.type, _of_charge(name), field.meaning)
    for name, field in TARGET_FIELDS.items()
    if name not in ("age", "balance", "patient_balance")
}
"""The target fields a charge alone answers, for a charge target (an installment is never
one): each is the charge's attribute of the same name. A condition that reads only these
has a charge form."""


def _of_charge_alone(test: Test, charge: Charge) -> str | None:
    return test(charge, None)


def _charge_closure(condition: Condition) -> Callable[[Charge], str | None]:
    """The condition over a charge alone (it reads only :data:`CHARGE_FIELDS`). The
    commonest condition, one field ``in`` a list, reads the field directly."""
    if isinstance(condition, Leaf) and condition.op == "in" and condition.other is None:
        return _charge_in_list(condition)
    return partial(_of_charge_alone, _closure(condition, CHARGE_FIELDS))


PAYMENT_FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field("payment.payer", "payer", _payment("payer"), "patient or insurance"),
        Field("payment.provider", "provider", _payment("provider"), "the payment's provider"),
        Field("payment.office", "office", _payment("office"), "the payment's office"),
        Field("payment.method", "method", _payment("method"), "how it was paid"),
        Field("payment.amount", "money", _payment("amount"), "the payment's amount"),
        Field(
            "payment.unearned_type",
            "unearned_type",
            _payment("unearned_type"),
            "its unearned type (the default when it names none)",
        ),
        Field("payment.patient", "patient", _payment("patient"), "the payment's patient"),
    )
}


# --- the compiled condition ------------------------------------------------------
BaseOp = Literal["=", "in", ">", ">=", "<", "<="]


@dataclass(frozen=True)
class Leaf:
    """One comparison; ``negated`` flips it (``!=`` is a negated ``=``)."""

    field: str
    type: ValueType
    op: BaseOp
    negated: bool
    values: tuple[Any, ...]
    """The constants compared with (one, or a list's items)."""
    other: str | None
    """A field compared with instead of constants."""
    text: str
    """The comparison as written."""


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


Condition: TypeAlias = Leaf | AllOf | AnyOf


@dataclass(frozen=True, eq=False)
class WhereFilter(Filter):
    """A compiled ``where``: keeps the targets its condition holds for."""

    condition: Condition
    test: Test
    charge_test: Callable[[Charge], str | None] | None = None
    """The same condition compiled over the charge alone, when it reads only the charge's
    own fields (:data:`CHARGE_FIELDS`)."""

    def skip_reason(self, target: Target, payment: Payment | None) -> str | None:
        return self.test(target, payment)

    def charge_form(self) -> Callable[[Charge], str | None] | None:
        return self.charge_test

    def charge_predicate(self) -> Callable[[Charge], bool] | None:
        if self.charge_test is None:
            return None
        return predicate_of(self.condition)


@dataclass(frozen=True)
class ExprProblem:
    message: str
    hint: str
    span: Span


class Compiled:
    """What :func:`compile_where` produced, or the problems it found."""

    def __init__(self, condition: Condition | None, problems: list[ExprProblem]) -> None:
        self.condition = condition
        self.problems = problems


# --- checking ----------------------------------------------------------------------
class _Checker:
    def __init__(self, check_word: VocabularyCheck, default_unearned_type: str | None) -> None:
        self.check_word = check_word
        self.problems: list[ExprProblem] = []
        self.payment_fields = dict(PAYMENT_FIELDS)
        default = default_unearned_type or "prepayment"
        self.payment_fields["payment.unearned_type"] = Field(
            "payment.unearned_type",
            "unearned_type",
            lambda _t, p: None if p is None else (p.unearned_type or default),
            PAYMENT_FIELDS["payment.unearned_type"].meaning,
        )

    def problem(self, message: str, span: Span, hint: str = "") -> None:
        self.problems.append(ExprProblem(message, hint, span))

    def condition(self, expr: Expr, negate: bool) -> Condition | None:
        if isinstance(expr, Group):
            return self.condition(expr.item, negate)
        if isinstance(expr, Not):
            return self.condition(expr.item, negate != (expr.count % 2 == 1))
        if isinstance(expr, And | Or):
            items = [self.condition(item, negate) for item in expr.items]
            if any(item is None for item in items):
                return None
            kept = tuple(i for i in items if i is not None)
            return AnyOf(kept) if isinstance(expr, And) == negate else AllOf(kept)
        return self.comparison(expr, negate)

    def field(self, operand: Operand, side: Literal["left", "right"]) -> Field | None:
        if operand.kind == "word" and side == "left":
            found = TARGET_FIELDS.get(operand.text)
            if found is None:
                self.unknown_field(operand)
            return found
        if operand.kind != "qualified":
            self.problem(
                f"a condition starts with a field, not {_quoted(operand)}",
                operand.span,
                "for example: where balance > 0",
            )
            return None
        prefix, _, name = operand.text.partition(".")
        if prefix == "charge":
            found = TARGET_FIELDS.get(name)
        elif prefix == "payment":
            found = self.payment_fields.get(operand.text)
        else:
            self.problem(
                f'unknown field "{operand.text}": fields are written NAME, charge.NAME '
                "or payment.NAME",
                operand.span,
            )
            return None
        if found is None:
            self.unknown_field(operand)
        return found

    def unknown_field(self, operand: Operand) -> None:
        if operand.text.startswith("payment."):
            names = list(PAYMENT_FIELDS)
        elif operand.text.startswith("charge."):
            names = [f"charge.{n}" for n in TARGET_FIELDS]
        else:
            names = [*TARGET_FIELDS, *PAYMENT_FIELDS]
        close = closest(operand.text, names)
        hint = f"did you mean {close}?" if close else "fields: " + ", ".join(TARGET_FIELDS)
        self.problem(f'unknown field "{operand.text}"', operand.span, hint)

    def comparison(self, expr: Comparison, negate: bool) -> Leaf | None:
        field = self.field(expr.left, "left")
        if field is None:
            return None
        op = expr.op
        if op in ("<", "<=", ">", ">=") and field.type not in ORDERED:
            self.problem(
                f"{field.name} has no order: compare it with =, !=, in or not in",
                expr.span,
            )
            return None
        base: BaseOp = "=" if op == "!=" else "in" if op == "not in" else op  # type: ignore[assignment]
        negated = negate != (op in ("!=", "not in"))
        canonical = field.name
        if len(expr.right) == 1 and expr.right[0].kind == "qualified" and base != "in":
            other = self.field(expr.right[0], "right")
            if other is None:
                return None
            if other.type != field.type:
                self.problem(
                    f"{field.name} ({_type_words(field.type)}) cannot be compared with "
                    f"{other.name} ({_type_words(other.type)})",
                    expr.span,
                )
                return None
            return Leaf(canonical, field.type, base, negated, (), other.name, _text(expr))
        values = [self.value(field, operand) for operand in expr.right]
        if any(v is _BAD for v in values):
            return None
        return Leaf(canonical, field.type, base, negated, tuple(values), None, _text(expr))

    def value(self, field: Field, operand: Operand) -> Any:
        kind, kind_type = operand.kind, field.type
        if kind == "qualified":
            self.problem(f"a list holds values, not the field {operand.text}", operand.span)
            return _BAD
        if kind_type == "money":
            if kind == "amount":
                try:
                    return parse_amount(operand.text)
                except MoneyError as exc:
                    self.problem(str(exc), operand.span)
                    return _BAD
            return self.mismatch(field, operand, "an amount such as 12.50")
        if kind_type == "date":
            if kind == "date":
                try:
                    return dt.date.fromisoformat(operand.text)
                except ValueError:
                    self.problem(f"{operand.text} is not a date", operand.span)
                    return _BAD
            return self.mismatch(field, operand, "a date such as 2025-01-22")
        if kind_type == "days":
            if kind == "duration":
                return int(operand.text.split()[0])
            return self.mismatch(field, operand, "a number of days such as 90 days")
        if kind_type in ENUMS or kind_type == "payer":
            if kind not in ("word", "string"):
                return self.mismatch(field, operand, f"a {_type_words(kind_type)}")
            return self.enum_value(field, operand)
        if kind in ("word", "string", "amount"):
            return operand.value
        return self.mismatch(field, operand, f"a {_type_words(kind_type)}")

    def enum_value(self, field: Field, operand: Operand) -> Any:
        word = operand.value
        if field.type == "payer":
            if word in PAYERS:
                return word
            close = closest(word, PAYERS)
            self.problem(
                f'unknown payer "{word}": a payer is patient or insurance',
                operand.span,
                f"did you mean {close}?" if close else "",
            )
            return _BAD
        found = self.check_word(ENUMS[field.type], word)
        if found is not None:
            self.problem(found[0], operand.span, found[1])
            return _BAD
        return word

    def mismatch(self, field: Field, operand: Operand, wanted: str) -> Any:
        hint = ""
        if operand.kind == "word" and operand.text in TARGET_FIELDS:
            hint = f"a field on the right is written charge.{operand.text} or payment.NAME"
        elif field.type == "days" and operand.kind == "amount":
            hint = f"write {operand.text} days"
        self.problem(
            f"{field.name} is {_type_words(field.type, article=True)}: expected {wanted}, "
            f"found {_quoted(operand)}",
            operand.span,
            hint,
        )
        return _BAD


_BAD = object()


def _type_words(kind: str, article: bool = False) -> str:
    words = {
        "money": "an amount",
        "date": "a date",
        "days": "a number of days",
        "status": "a status",
        "kind": "a charge kind",
        "unearned_type": "an unearned type",
        "payer": "a payer",
        "charge": "a charge id",
        "patient": "a patient id",
        "provider": "a provider id",
        "office": "an office id",
        "appointment": "an appointment id",
        "code": "a procedure code",
        "method": "a payment method",
    }[kind]
    return words if article else words.split(" ", 1)[1]


def _quoted(operand: Operand) -> str:
    return operand.text if operand.kind == "string" else f'"{operand.text}"'


def _text(expr: Comparison) -> str:
    right = ", ".join(o.text for o in expr.right)
    if expr.op in ("in", "not in"):
        right = f"({right})"
    return f"{expr.left.text} {expr.op} {right}"


def compile_where(
    expr: Expr, check_word: VocabularyCheck, default_unearned_type: str | None = None
) -> tuple[WhereFilter | None, list[ExprProblem]]:
    """Type-check a ``where`` expression and compile it into a filter."""
    checker = _Checker(check_word, default_unearned_type)
    condition = checker.condition(expr, negate=False)
    if condition is None or checker.problems:
        return None, checker.problems
    fields = {**TARGET_FIELDS, **checker.payment_fields}
    charge_test: Callable[[Charge], str | None] | None = None
    if all(name in CHARGE_FIELDS for name in _fields_read(condition)):
        charge_test = _charge_closure(condition)
    return WhereFilter(condition, _closure(condition, fields), charge_test), []


def _fields_read(condition: Condition) -> set[str]:
    if isinstance(condition, Leaf):
        return {condition.field} if condition.other is None else {condition.field, condition.other}
    return set().union(*(_fields_read(item) for item in condition.items))


def order_field(operand: Operand) -> tuple[Field | None, ExprProblem | None]:
    """The target field of an ``order by`` key."""
    name = operand.text
    if name.startswith("charge."):
        name = name.split(".", 1)[1]
    found = TARGET_FIELDS.get(name) if operand.kind in ("word", "qualified") else None
    if found is not None and (operand.kind == "word" or operand.text.startswith("charge.")):
        return found, None
    if operand.text.startswith("payment."):
        return None, ExprProblem(
            f"order by {operand.text}: every target has the same payment; order by a charge field",
            "",
            operand.span,
        )
    close = closest(operand.text, list(TARGET_FIELDS))
    hint = f"did you mean {close}?" if close else "fields: " + ", ".join(TARGET_FIELDS)
    return None, ExprProblem(f'unknown field "{operand.text}"', hint, operand.span)


# --- closures ----------------------------------------------------------------------
def _closure(condition: Condition, fields: dict[str, Field]) -> Test:
    if isinstance(condition, Leaf):
        return _leaf(condition, fields)
    parts = tuple(_closure(item, fields) for item in condition.items)
    if isinstance(condition, AllOf):

        def all_of(target: Target, payment: Payment | None) -> str | None:
            for part in parts:
                reason = part(target, payment)
                if reason is not None:
                    return reason
            return None

        return all_of

    def any_of(target: Target, payment: Payment | None) -> str | None:
        reasons = []
        for part in parts:
            reason = part(target, payment)
            if reason is None:
                return None
            reasons.append(reason)
        return " and ".join(reasons)

    return any_of


_HOLDS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda v, c: v == c,
    ">": lambda v, c: v > c,
    ">=": lambda v, c: v >= c,
    "<": lambda v, c: v < c,
    "<=": lambda v, c: v <= c,
}


def _leaf(leaf: Leaf, fields: dict[str, Field]) -> Test:
    get = fields[leaf.field].get
    shown = _formatter(leaf.type)
    name = leaf.field
    negated = leaf.negated
    words = _words(leaf)
    if leaf.other is not None:
        get_other = fields[leaf.other].get
        holds = _HOLDS[leaf.op]
        other_name = leaf.other

        def against_field(target: Target, payment: Payment | None) -> str | None:
            value, other = get(target, payment), get_other(target, payment)
            ok = value is not None and other is not None and holds(value, other)
            if ok != negated:
                return None
            return _reason(name, shown(value), words, f"{other_name} {shown(other)}", negated)

        return against_field
    if leaf.op == "in":
        members, reason_for = _in_parts(leaf)

        def in_list(target: Target, payment: Payment | None) -> str | None:
            value = get(target, payment)
            if (value is not None and value in members) != negated:
                return None
            return reason_for(value)

        return in_list
    constant = leaf.values[0]
    holds = _HOLDS[leaf.op]
    right = shown(constant)

    def against_constant(target: Target, payment: Payment | None) -> str | None:
        value = get(target, payment)
        if (value is not None and holds(value, constant)) != negated:
            return None
        return _reason(name, shown(value), words, right, negated)

    return against_constant


def _in_parts(leaf: Leaf) -> tuple[frozenset[Any], Callable[[Any], str]]:
    """An ``in`` comparison's members, and the reason it fails for a value (kept by
    value: the same few statuses and kinds recur on every charge)."""
    members = frozenset(leaf.values)
    shown = _formatter(leaf.type)
    name = leaf.field
    listed = _or_list([shown(v) for v in leaf.values])
    said: dict[Any, str] = {}

    def reason_for(value: Any) -> str:
        reason = said.get(value)
        if reason is None:
            if leaf.negated:
                reason = f"{name} is {shown(value)}"
            else:
                reason = f"{name} {shown(value)} is not {listed}"
            if len(said) < 64:
                said[value] = reason
        return reason

    return members, reason_for


def _charge_in_list(leaf: Leaf) -> Callable[[Charge], str | None]:
    """``FIELD in (...)`` over a charge alone, reading the charge's attribute directly."""
    members, reason_for = _in_parts(leaf)
    get = attrgetter(leaf.field)
    negated = leaf.negated

    def in_list(charge: Charge) -> str | None:
        value = get(charge)
        if (value is not None and value in members) != negated:
            return None
        return reason_for(value)

    return in_list


def _words(leaf: Leaf) -> tuple[str, str]:
    """What to say when the comparison fails, and when its negation fails."""
    if leaf.type == "date":
        table = {
            ">": ("is not after", "is after"),
            ">=": ("is before", "is not before"),
            "<": ("is not before", "is before"),
            "<=": ("is after", "is not after"),
        }
    else:
        table = {
            ">": ("is not more than", "is more than"),
            ">=": ("is less than", "is not less than"),
            "<": ("is not less than", "is less than"),
            "<=": ("is more than", "is not more than"),
        }
    return table.get(leaf.op, ("is not", "is"))


def _reason(name: str, value: str, words: tuple[str, str], right: str, negated: bool) -> str:
    if words == ("is not", "is") and negated:
        return f"{name} is {right}"
    return f"{name} {value} {words[1] if negated else words[0]} {right}"


def _or_list(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _formatter(kind: str) -> Callable[[Any], str]:
    def shown(value: Any) -> str:
        if value is None:
            return "(none)"
        if kind == "money":
            return format_cents(value)
        if kind == "date":
            return str(value.isoformat())
        if kind == "days":
            return f"{value} day" if value == 1 else f"{value} days"
        return str(value)

    return shown
