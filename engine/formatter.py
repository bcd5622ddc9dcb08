"""``paysplit fmt``: the canonical form of a rule file.

Settings first; a blank line between items; every rule as a block with four
spaces of indentation and one clause per line, in the order
on / from / to / order (and modes) / where / others / leftover (clauses of
the same group keep their written order); single spaces between words,
``status = due_patient`` around operators, ``(a, b)`` lists. Comments are
kept: a comment on its own line stays above what followed it, one at the end
of a line stays after the first clause of that line. Formatting is
idempotent and only moves whitespace and whole clauses, never meaning.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from paysplit.errors import Diagnostic
from paysplit.parser import parse_file
from paysplit.syntax import (
    And,
    Clause,
    Comment,
    Comparison,
    Expr,
    Group,
    Item,
    KeywordClause,
    Not,
    Operand,
    Or,
    OrderClause,
    RuleFile,
    SettingsDecl,
    WhereClause,
    Word,
    Words,
)

INDENT = "    "
_GROUP = {"on": 0, "from": 1, "to": 2, "mode": 3, "leftover": 6}


# --- one clause ----------------------------------------------------------------
def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_word(word: Word) -> str:
    if word.kind == "string":
        return quote(word.value)
    if word.kind == "list":
        return "(" + ", ".join(render_word(item) for item in word.items) + ")"
    return word.text


def render_words(words: Words) -> str:
    return " ".join(render_word(w) for w in words.items)


def render_operand(operand: Operand) -> str:
    return quote(operand.value) if operand.kind == "string" else operand.text


def render_expr(expr: Expr) -> str:
    if isinstance(expr, Or):
        return " or ".join(render_expr(item) for item in expr.items)
    if isinstance(expr, And):
        return " and ".join(render_expr(item) for item in expr.items)
    if isinstance(expr, Not):
        return "not " * expr.count + render_expr(expr.item)
    if isinstance(expr, Group):
        return "(" + render_expr(expr.item) + ")"
    return render_comparison(expr)


def render_comparison(expr: Comparison) -> str:
    left = render_operand(expr.left)
    if expr.op in ("in", "not in"):
        items = ", ".join(render_operand(o) for o in expr.right)
        return f"{left} {expr.op} ({items})"
    return f"{left} {expr.op} {render_operand(expr.right[0])}"


def render_order(clause: OrderClause) -> str:
    if clause.name is not None:
        return f"{clause.name} first"
    keys = [
        k.field.text + (f" {k.direction}" if k.direction is not None else "") for k in clause.keys
    ]
    return "order by " + " then ".join(keys)


def render_clause(clause: Clause) -> str:
    """A clause in canonical spelling (also the key that finds repeated clauses)."""
    if isinstance(clause, KeywordClause):
        return f"{clause.keyword} {render_words(clause.words)}"
    if isinstance(clause, WhereClause):
        return "where " + render_expr(clause.expr)
    if isinstance(clause, OrderClause):
        text = render_order(clause)
        return text if clause.where is None else f"{text} {render_clause(clause.where)}"
    return render_words(clause.words)


def clause_group(clause: Clause) -> int:
    """Where a clause goes in a canonical rule: on, from, to, order, where, others, leftover."""
    if isinstance(clause, KeywordClause):
        return _GROUP[clause.keyword]
    if isinstance(clause, OrderClause):
        return 3
    if isinstance(clause, WhereClause):
        return 4
    return 5


# --- whole files -----------------------------------------------------------------
@dataclass
class _Notes:
    """The comments that go with one item and its clauses."""

    leading: list[Comment] = field(default_factory=list)
    trailing: Comment | None = None
    clauses: dict[int, tuple[list[Comment], Comment | None]] = field(default_factory=dict)


def format_file(rule_file: RuleFile) -> str:
    """The canonical text of a parsed file (one that parsed without errors)."""
    items = sorted(
        enumerate(rule_file.items),
        key=lambda pair: (not isinstance(pair[1], SettingsDecl), pair[0]),
    )
    header, notes, tail = _place_comments(rule_file)
    blocks: list[str] = []
    if header:
        blocks.append("\n".join(c.text for c in header))
    for index, item in items:
        blocks.append(_render_item(item, notes.get(index, _Notes())))
    if tail:
        blocks.append("\n".join(c.text for c in tail))
    return "\n\n".join(blocks) + "\n"


def format_text(text: str, path: str = "<text>") -> tuple[str | None, list[Diagnostic]]:
    """Parse and format; None and the syntax errors when it does not parse."""
    result = parse_file(path, text)
    if result.errors:
        return None, result.errors
    if not result.file.items:
        return text, []  # only comments: nothing to arrange
    return format_file(result.file), []


def _render_item(item: Item, notes: _Notes) -> str:
    lines = [c.text for c in notes.leading]
    if isinstance(item, SettingsDecl):
        head = "settings:"
    else:
        title = f" {quote(item.title)}" if item.title is not None else ""
        head = f"rule {item.name}{title}:"
    lines.append(_with_comment(head, notes.trailing))
    order = sorted(range(len(item.clauses)), key=lambda i: (clause_group(item.clauses[i]), i))
    if isinstance(item, SettingsDecl):
        order = list(range(len(item.clauses)))
    for index in order:
        leading, trailing = notes.clauses.get(index, ([], None))
        lines.extend(INDENT + c.text for c in leading)
        lines.append(_with_comment(INDENT + render_clause(item.clauses[index]), trailing))
    return "\n".join(lines)


def _with_comment(text: str, comment: Comment | None) -> str:
    return text if comment is None else f"{text}  {comment.text}"


def _place_comments(
    rule_file: RuleFile,
) -> tuple[list[Comment], dict[int, _Notes], list[Comment]]:
    """Attach each comment to the item or clause it belongs with."""
    anchors: dict[int, tuple[int, int | None]] = {}
    """line -> (item index, clause index or None for the item's header)."""
    for index, item in enumerate(rule_file.items):
        anchors.setdefault(item.span.line, (index, None))
        for position, clause in enumerate(item.clauses):
            anchors.setdefault(clause.span.line, (index, position))
    lines = sorted(anchors)
    notes: dict[int, _Notes] = {}
    header: list[Comment] = []
    tail: list[Comment] = []
    first_line = lines[0] if lines else 0
    for comment in rule_file.comments:
        if not comment.own_line and comment.line in anchors:
            item_index, clause_index = anchors[comment.line]
            target = notes.setdefault(item_index, _Notes())
            if clause_index is None:
                target.trailing = comment
            else:
                leading, _ = target.clauses.get(clause_index, ([], None))
                target.clauses[clause_index] = (leading, comment)
            continue
        after = bisect.bisect_right(lines, comment.line)
        if after == len(lines):
            tail.append(comment)
            continue
        if comment.line < first_line and _separated(rule_file, comment.line, first_line):
            header.append(comment)
            continue
        item_index, clause_index = anchors[lines[after]]
        target = notes.setdefault(item_index, _Notes())
        if clause_index is None:
            target.leading.append(comment)
        else:
            leading, trailing = target.clauses.get(clause_index, ([], None))
            target.clauses[clause_index] = ([*leading, comment], trailing)
    return header, notes, tail


def _separated(rule_file: RuleFile, line: int, first_item: int) -> bool:
    """A comment above the first item belongs to the file when a blank line follows it."""
    return any(not rule_file.line(n).strip() for n in range(line + 1, first_item))
