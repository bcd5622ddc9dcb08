"""A ``where`` condition over a charge alone, compiled to one Python function: kept or not.

:meth:`paysplit.expressions.WhereFilter.charge_form` answers *why* a charge is skipped,
a closure per comparison. A batch run without the trace (``paysplit batch --trace
none``) never says why: it asks only whether the charge is kept, once per charge of
every account. :func:`predicate_of` gives that answer from one generated function,
``charge.status in _k0`` for ``where status in (due_patient, pending_patient)``, with
no call per comparison and no reason text.

The source is made from the condition's structure only: field names from the field
table (:data:`paysplit.expressions.CHARGE_FIELDS`, each a :class:`~paysplit.ledger.Charge`
attribute, checked again here), operators from a fixed table, and every constant bound
by name in the function's globals, never written into the source. No text of a rule
file is ever evaluated as code. The function keeps exactly the charges the charge form
gives no reason for (``tests/test_charge_predicates.py`` holds the two to that).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from paysplit.ledger import Charge

if TYPE_CHECKING:
    from paysplit.expressions import Condition

__all__ = ["predicate_of"]

_OPERATORS = {"=": "==", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


class _Source:
    """The pieces of one generated function: its expression's constants and names."""

    def __init__(self) -> None:
        self.constants: dict[str, Any] = {}
        self.names = 0

    def constant(self, value: Any) -> str:
        name = f"_k{len(self.constants)}"
        self.constants[name] = value
        return name

    @staticmethod
    def field(field: str) -> str:
        if not field.isidentifier() or field not in Charge.model_fields:
            raise ValueError(f"not a charge field: {field!r}")
        return field

    def value(self, field: str) -> tuple[str, str]:
        """(the expression that reads ``field`` once into a name, the name)."""
        self.field(field)
        name = f"_v{self.names}"
        self.names += 1
        return f"({name} := charge.{field})", name

    def holds(self, condition: Condition) -> str:
        """The expression, true when ``condition`` keeps the charge."""
        from paysplit.expressions import AllOf, AnyOf  # (it imports this module)

        if isinstance(condition, AllOf | AnyOf):
            joiner = " and " if isinstance(condition, AllOf) else " or "
            return "(" + joiner.join(self.holds(item) for item in condition.items) + ")"
        leaf = condition
        # As the closures read it (expressions._leaf): a comparison with a missing value
        # (None) fails, and ``negated`` flips the outcome, the missing value's included.
        if leaf.other is None and leaf.op in ("in", "=") and None not in leaf.values:
            # A missing value is in no list and equal to no constant: no test for None.
            members = self.constant(frozenset(leaf.values))
            test = f"charge.{self.field(leaf.field)} in {members}"
        else:
            read, value = self.value(leaf.field)
            op = _OPERATORS[leaf.op]
            if leaf.other is not None:
                read_other, other = self.value(leaf.other)
                test = f"{read} is not None and {read_other} is not None and {value} {op} {other}"
            else:
                test = f"{read} is not None and {value} {op} {self.constant(leaf.values[0])}"
        return f"(not ({test}))" if leaf.negated else f"({test})"


def predicate_of(condition: Condition) -> Callable[[Charge], bool]:
    """One function of a charge: True when ``condition`` (which reads only the charge's own
    fields) keeps it, False when it skips it."""
    source = _Source()
    expression = source.holds(condition)
    text = f"def keeps(charge):\n    return {expression}\n"
    namespace: dict[str, Any] = dict(source.constants)
    exec(compile(text, "<paysplit where>", "exec"), namespace)  # (see the module's docstring)
    keeps: Callable[[Charge], bool] = namespace["keeps"]
    return keeps
