"""Turns Lark's parse tree into the frozen nodes of :mod:`paysplit.syntax`.

One pass over the tree, with every position shifted by the line offset of
the block being parsed. Recursion follows only expression nesting, which
:mod:`paysplit.source` bounds before Lark runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast

from lark import Token, Tree

from paysplit.syntax import (
    And,
    Clause,
    Comparison,
    Expr,
    Group,
    Item,
    Keyword,
    KeywordClause,
    Not,
    Operand,
    OperandKind,
    Or,
    OrderClause,
    OrderKey,
    PhraseClause,
    RuleDecl,
    SettingsDecl,
    Span,
    WhereClause,
    Word,
    WordKind,
    Words,
)

_WORD_KINDS: dict[str, WordKind] = {
    "WORD": "word",
    "STRING": "string",
    "AMOUNT": "amount",
    "DATE": "date",
    "DURATION": "duration",
}
_OPERAND_KINDS: dict[str, OperandKind] = {
    "WORD": "word",
    "QNAME": "qualified",
    "STRING": "string",
    "AMOUNT": "amount",
    "DATE": "date",
    "DURATION": "duration",
}
_KEYWORD_CLAUSES: dict[str, Keyword] = {
    "on_clause": "on",
    "from_clause": "from",
    "to_clause": "to",
    "leftover_clause": "leftover",
    "mode_clause": "mode",
}

Node = Tree[Token] | Token


def unescape(literal: str) -> str:
    """A string literal's content: ``\\"`` and ``\\\\`` are the only escapes."""
    body = literal[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            index += 1
            char = body[index]
        out.append(char)
        index += 1
    return "".join(out)


class Builder:
    """Builds nodes for one parsed piece of text that starts at ``line_offset + 1``."""

    def __init__(self, text: str, line_offset: int = 0) -> None:
        self.text = text
        self.offset = line_offset

    # --- positions -----------------------------------------------------------
    def span(self, node: Node) -> Span:
        if isinstance(node, Token):
            line, column = node.line or 1, node.column or 1
            end_line, end_column = node.end_line or line, node.end_column or column + 1
        else:
            meta = node.meta
            line, column = meta.line, meta.column
            end_line, end_column = meta.end_line, meta.end_column
        return Span(line + self.offset, column, end_line + self.offset, end_column)

    def source(self, node: Node) -> str:
        if isinstance(node, Token):
            return str(node)
        return self.text[node.meta.start_pos : node.meta.end_pos]

    # --- the file ------------------------------------------------------------
    def items(self, tree: Tree[Token]) -> list[Item]:
        out: list[Item] = []
        for child in tree.children:
            if isinstance(child, Tree) and child.data == "settings":
                out.append(SettingsDecl(self.clause_lists(child.children), self.span(child)))
            elif isinstance(child, Tree) and child.data == "rule":
                out.append(self.rule(child))
        return out

    def rule(self, tree: Tree[Token]) -> RuleDecl:
        name = cast(Token, tree.children[0])
        rest = tree.children[1:]
        title: str | None = None
        if rest and isinstance(rest[0], Tree) and rest[0].data == "title":
            title = unescape(str(rest[0].children[0]))
            rest = rest[1:]
        span = self.span(tree)
        clause_lists = [c for c in rest if isinstance(c, Tree)]
        inline = bool(clause_lists) and self.span(clause_lists[0]).line == span.line
        return RuleDecl(
            name=str(name),
            name_span=self.span(name),
            title=title,
            clauses=self.clause_lists(clause_lists),
            inline=inline,
            span=span,
        )

    def clause_lists(self, children: Sequence[Node]) -> tuple[Clause, ...]:
        out: list[Clause] = []
        for child in children:
            if isinstance(child, Tree) and child.data == "clause_list":
                out.extend(self.clause(c) for c in child.children if isinstance(c, Tree))
        return tuple(out)

    def clauses(self, tree: Tree[Token]) -> tuple[Clause, ...]:
        """The clauses of a ``clauses`` parse (a mode's expansion)."""
        return self.clause_lists(tree.children)

    # --- clauses -------------------------------------------------------------
    def clause(self, tree: Tree[Token]) -> Clause:
        kind = str(tree.data)
        if kind in _KEYWORD_CLAUSES:
            words = self.words(cast(Tree[Token], tree.children[0]))
            return KeywordClause(_KEYWORD_CLAUSES[kind], words, self.source(tree), self.span(tree))
        if kind == "where_clause":
            return self.where(tree)
        if kind == "order_clause":
            return self.order(tree)
        words = self.words(tree)
        return PhraseClause(words, words.text, words.span)

    def words(self, tree: Tree[Token]) -> Words:
        items: list[Word] = []
        for child in tree.children:
            if isinstance(child, Token):
                items.append(self.word(child))
            else:
                members = tuple(self.word(c) for c in child.children if isinstance(c, Token))
                text = "(" + ", ".join(m.text for m in members) + ")"
                items.append(Word("list", text, text, self.span(child), members))
        return Words(tuple(items), self.source(tree), self.span(tree))

    def word(self, token: Token) -> Word:
        kind = _WORD_KINDS[token.type]
        text = str(token)
        value = unescape(text) if kind == "string" else _squeeze(text)
        return Word(kind, _squeeze(text) if kind == "duration" else text, value, self.span(token))

    def order(self, tree: Tree[Token]) -> OrderClause:
        spec = cast(Tree[Token], tree.children[0])
        where_tree = tree.children[1] if len(tree.children) > 1 else None
        where = self.where(cast(Tree[Token], where_tree)) if where_tree is not None else None
        name: Literal["oldest", "newest", "largest", "smallest"] | None = None
        keys: list[OrderKey] = []
        if spec.data == "named_order":
            name = cast(Literal["oldest", "newest", "largest", "smallest"], str(spec.children[0]))
        else:
            for key in spec.children:
                if not isinstance(key, Tree):
                    continue
                field = self.operand(cast(Token, key.children[0]))
                direction = str(key.children[1]) if len(key.children) > 1 else None
                keys.append(
                    OrderKey(
                        field,
                        cast(Literal["asc", "desc"] | None, direction),
                        self.span(key),
                    )
                )
        return OrderClause(name, tuple(keys), where, self.source(spec), self.span(spec))

    def where(self, tree: Tree[Token]) -> WhereClause:
        expr = self.expr(tree.children[0])
        return WhereClause(expr, self.source(tree), self.span(tree))

    # --- expressions -----------------------------------------------------------
    def expr(self, node: Node) -> Expr:
        tree = cast(Tree[Token], node)
        kind = str(tree.data)
        span = self.span(tree)
        if kind == "expr":
            return Or(tuple(self.expr(c) for c in tree.children), span)
        if kind == "and_test":
            return And(tuple(self.expr(c) for c in tree.children), span)
        if kind == "not_test":
            count = sum(1 for c in tree.children if isinstance(c, Token))
            return Not(count, self.expr(tree.children[-1]), span)
        if kind == "group":
            return Group(self.expr(tree.children[0]), span)
        tokens = [c for c in tree.children if isinstance(c, Token) and c.type != "NOT"]
        left = self.operand(tokens[0])
        if kind == "comparison":
            return Comparison(left, str(tokens[1]), (self.operand(tokens[2]),), span)
        values = cast(Tree[Token], tree.children[-1])
        right = tuple(self.operand(c) for c in values.children if isinstance(c, Token))
        return Comparison(left, "in" if kind == "in_list" else "not in", right, span)

    def operand(self, token: Token) -> Operand:
        kind = _OPERAND_KINDS[token.type]
        text = _squeeze(str(token)) if kind == "duration" else str(token)
        value = unescape(text) if kind == "string" else text
        return Operand(kind, text, value, self.span(token))


def _squeeze(text: str) -> str:
    """``90   days`` -> ``90 days`` (a duration's canonical spelling)."""
    return " ".join(text.split())
