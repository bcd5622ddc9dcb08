"""The parser: ``grammar.lark`` behind a thin wrapper that speaks in our own errors.

Lark's exceptions never leave this module: each becomes a
:class:`SyntaxProblem` with a line, a column and a plain sentence of what was
expected there (Lark's terminal names turned into words). :func:`parse_file`
reports every mistake of a file once: when a parse fails it goes on block by
block and line by line, replacing a bad line by a placeholder clause so the
rest is still checked without follow-on errors.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedToken
from lark.lark import PostLex

from paysplit import source
from paysplit.builder import Builder
from paysplit.errors import Diagnostic
from paysplit.syntax import Clause, Item, PhraseClause, RuleDecl, RuleFile

PLACEHOLDER = "__paysplit_reported__"
"""Stands in for a line already reported, so that the rest can still be parsed."""
MAX_ERRORS = 50
"""After this many syntax errors in one file, paysplit stops looking for more."""
TAB = 4
"""How many columns a tab counts for in indentation (as errors display it)."""


class SyntaxProblem(Exception):
    """One syntax error, at a line (of the whole file) and column."""

    def __init__(
        self, line: int, column: int, message: str, hint: str = "", *, width: int = 1
    ) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message
        self.hint = hint
        self.width = width
        self.indent = False
        """True when an indented line was unexpected (the whole indented run is one mistake)."""

    def diagnostic(self, file: str, lines: list[str]) -> Diagnostic:
        line_text = lines[self.line - 1] if 0 < self.line <= len(lines) else ""
        return Diagnostic(
            file, self.line, self.column, self.message, self.hint, "error", line_text, self.width
        )


class _Indentation(PostLex):
    """Turns the indentation after each newline into _INDENT / _DEDENT tokens.

    Unlike Lark's own Indenter it keeps no state between parses, treats
    parentheses like any token (a clause never spans lines) and reports an
    inconsistent dedent as a :class:`SyntaxProblem`.
    """

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        levels = [0]
        first = True
        last: Token | None = None
        for token in stream:
            last = token
            if first and token.type != "_NL" and (token.column or 1) > 1:
                raise SyntaxProblem(
                    token.line or 1,
                    1,
                    "this line is indented, but nothing before it opens a block",
                    "start rules and settings in the first column",
                )
            first = False
            if token.type != "_NL":
                yield token
                continue
            yield token
            tail = str(token).rsplit("\n", 1)[-1]
            indent = sum(TAB if c == "\t" else 1 for c in tail)
            if indent > levels[-1]:
                levels.append(indent)
                yield Token.new_borrow_pos("_INDENT", tail, token)
                continue
            while indent < levels[-1]:
                levels.pop()
                yield Token.new_borrow_pos("_DEDENT", tail, token)
            if indent != levels[-1]:
                raise SyntaxProblem(
                    (token.end_line or 1),
                    indent + 1,
                    "this line's indentation does not match the lines above it",
                    "indent every clause of a block by the same amount (four spaces)",
                )
        while len(levels) > 1:
            levels.pop()
            if last is not None:
                yield Token.new_borrow_pos("_DEDENT", "", last)


@functools.cache
def lark_parser() -> Lark:
    """The LALR parser for ``grammar.lark`` (built once per process)."""
    grammar = files("paysplit").joinpath("grammar.lark").read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        postlex=_Indentation(),
        start=["start", "clauses"],
        propagate_positions=True,
        maybe_placeholders=False,
    )


# --- turning Lark's errors into sentences ------------------------------------
_TERMINALS = {
    "_NL": "end of line",
    "_INDENT": "an indented line",
    "_DEDENT": "a line that is less indented",
    "$END": "end of file",
    "WORD": "a word",
    "QNAME": "a field such as payment.provider",
    "STRING": "a quoted string",
    "AMOUNT": "an amount",
    "DATE": "a date",
    "DURATION": "a duration such as 90 days",
    "OP": "a comparison (=, !=, <, <=, >, >=)",
    "NOT": '"not"',
}
_CLAUSE_START = {"ON", "FROM", "TO", "LEFTOVER", "MODE", "OLDEST", "ORDER", "WHERE"}
_VALUES = {"WORD", "QNAME", "STRING", "AMOUNT", "DATE", "DURATION"}
_PHRASE_ITEMS = {"WORD", "STRING", "AMOUNT", "DATE", "DURATION", "LPAR"}


def _terminal_words(name: str) -> str:
    if name in _TERMINALS:
        return _TERMINALS[name]
    try:
        pattern = lark_parser().get_terminal(name).pattern
    except KeyError:
        return name.lower()
    return f'"{pattern.value}"'


def _expected(names: set[str]) -> str:
    names = {n for n in names if not n.startswith("__")}
    words: list[str] = []
    if names >= _CLAUSE_START:
        names -= _CLAUSE_START | {"NEWEST", "LARGEST", "SMALLEST"} | _PHRASE_ITEMS
        words.append("a clause")
    if {"_NL", "COMMA"} & names:
        names -= _PHRASE_ITEMS
    if names >= _VALUES:
        names -= _VALUES
        if "NOT" in names and "LPAR" in names:
            names -= {"NOT", "LPAR"}
            words.append("a condition such as status = due_patient")
        else:
            words.append("a field or a value")
    elif {"WORD", "QNAME"} <= names:
        names -= {"WORD", "QNAME"}
        words.append("a field")
    elif names >= _PHRASE_ITEMS:
        names -= _PHRASE_ITEMS
        words.append("a word")
    if {"OP", "IN", "NOT"} <= names:
        names -= {"OP", "IN", "NOT"}
        words.append("a comparison (=, !=, <, <=, >, >=, in, not in)")
    words.extend(sorted(_terminal_words(n) for n in names))
    if not words:
        return "something else"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _found(token: Token) -> str:
    if token.type in ("_NL", "_INDENT", "_DEDENT", "$END"):
        return _TERMINALS[token.type]
    text = str(token)
    shown = text if len(text) <= 40 else text[:37] + "..."
    return f'"{shown}"'


def _from_lark(error: LarkError, text: str) -> SyntaxProblem:
    if isinstance(error, UnexpectedToken):
        return _unexpected_token(error)
    if isinstance(error, UnexpectedCharacters):
        return _unexpected_character(error, text)
    if isinstance(error, UnexpectedEOF):
        line = text.count("\n") or 1
        return SyntaxProblem(
            line, 1, f"unexpected end of file; expected {_expected(set(error.expected))}"
        )
    return SyntaxProblem(1, 1, f"cannot parse this file ({type(error).__name__})")


def _accepted(error: UnexpectedToken) -> set[str]:
    """The terminals the parser would have taken (the lexer's own set adds _NL everywhere)."""
    interactive = getattr(error, "interactive_parser", None)
    if interactive is not None:
        try:
            accepted = {str(name) for name in interactive.accepts()}
        except LarkError:
            accepted = set()
        if accepted:
            return accepted
    return set(error.expected)


def _unexpected_token(error: UnexpectedToken) -> SyntaxProblem:
    token = error.token
    line, column = token.line or 1, token.column or 1
    expected = _accepted(error)
    if token.type == "_INDENT":
        problem = SyntaxProblem(
            (token.end_line or line),
            len(str(token)) + 1,
            "this line is indented, but nothing before it opens a block",
            "a rule written on one line has no block; otherwise indent all its clauses alike",
        )
        problem.indent = True
        return problem
    if {"RULE", "SETTINGS"} <= expected and not (expected & _CLAUSE_START):
        return SyntaxProblem(
            line,
            column,
            f'expected "rule" or "settings" at the start of a line, found {_found(token)}',
            'a rule file holds a "settings:" block and rules written "rule NAME:"',
            width=len(str(token)) if token.type not in ("_NL", "$END") else 1,
        )
    message = f"expected {_expected(expected)}, found {_found(token)}"
    hint = ""
    if "_INDENT" in expected and token.type in ("_NL", "$END"):
        hint = "write the clauses after the colon, or on indented lines below it"
    elif token.type == "OP" and "COMMA" in expected:
        hint = 'a condition is written after "where": where status = due_patient'
    width = len(str(token)) if token.type not in ("_NL", "_DEDENT", "$END") else 1
    return SyntaxProblem(line, column, message, hint, width=width)


def _unexpected_character(error: UnexpectedCharacters, text: str) -> SyntaxProblem:
    position = error.pos_in_stream or 0
    char = text[position] if 0 <= position < len(text) else "?"
    line, column = error.line, error.column
    if char == '"':
        return SyntaxProblem(
            line,
            column,
            "this string is not closed",
            'end it with " on the same line; \\" and \\\\ are the only escapes',
        )
    visible = char.isprintable() and not char.isspace()
    shown = f'"{char}"' if visible else f"U+{ord(char):04X}"
    hint = ""
    if char.isalpha():
        hint = 'words are written with the letters a-z, digits, "_" and "-"'
    elif char.isdigit():  # another script's digit (0-9 never gets here)
        hint = "numbers, amounts and dates are written with the digits 0-9"
    elif char == ".":
        hint = "fields are written payment.NAME or charge.NAME; amounts like 12.50"
    return SyntaxProblem(line, column, f"unexpected character {shown}", hint)


def parse_tree(text: str, start: str = "start") -> Tree[Token]:
    """Parse ``text`` (ending in a newline) or raise :class:`SyntaxProblem`."""
    try:
        return lark_parser().parse(text, start=start)
    except SyntaxProblem:
        raise
    except LarkError as error:
        inner = getattr(error, "orig_exc", None)
        if isinstance(inner, SyntaxProblem):
            raise inner from None
        raise _from_lark(error, text) from None


def parse_clauses(text: str) -> tuple[Clause, ...]:
    """The clauses of one line of rule text (a mode's expansion, a setting's default)."""
    body = text.strip()
    if "\n" in body or not body:
        raise SyntaxProblem(1, 1, "expected the clauses on one line")
    tree = parse_tree(body + "\n", start="clauses")
    return Builder(body + "\n").clauses(tree)


# --- whole files, with recovery ------------------------------------------------
@dataclass(frozen=True)
class ParseResult:
    file: RuleFile
    """The items that parsed; lines with errors are left out."""
    errors: list[Diagnostic]


def parse_file(path: str, text: str) -> ParseResult:
    """Parse a whole file, reporting each syntax error once."""
    lines = source.split_lines(text)
    comments = tuple(source.comments(lines))
    refused = source.prescan(path, text)
    if refused is not None:
        return ParseResult(RuleFile(path, text, (), comments, tuple(lines)), [refused])
    try:
        tree = parse_tree(text if text.endswith("\n") else text + "\n")
    except SyntaxProblem:
        pass
    else:
        items = tuple(Builder(text).items(tree))
        return ParseResult(RuleFile(path, text, items, comments, tuple(lines)), [])
    recovery = _Recovery(path, lines)
    items_found: list[Item] = []
    for block in source.blocks(lines):
        if recovery.stopped:
            break
        items_found.extend(recovery.parse_block(block))
    file = RuleFile(path, text, tuple(items_found), comments, tuple(lines))
    return ParseResult(file, recovery.errors)


class _Recovery:
    """Parses one block at a time; a bad line is reported once and replaced."""

    def __init__(self, path: str, lines: list[str]) -> None:
        self.path = path
        self.lines = lines
        self.errors: list[Diagnostic] = []
        self.budget = sum(len(line) + 1 for line in lines) + 40_000
        """Characters the recovery may re-parse: bounds the work on hostile input."""
        self.stopped = False

    def report(self, problem: SyntaxProblem) -> None:
        if len(self.errors) >= MAX_ERRORS:
            self.stop(problem.line)
            return
        self.errors.append(problem.diagnostic(self.path, self.lines))

    def stop(self, line: int) -> None:
        if not self.stopped:
            self.stopped = True
            self.errors.append(
                Diagnostic(
                    self.path,
                    line,
                    1,
                    "too many errors; paysplit stopped looking for more in this file",
                    "fix these first",
                    source_line=self.lines[line - 1] if 0 < line <= len(self.lines) else "",
                )
            )

    def parse_block(self, block: source.Block) -> list[Item]:
        body = list(self.lines[block.start : block.end])
        replaced: dict[int, int] = {}
        indent = _body_indent(body)
        while True:
            text = "\n".join(body) + "\n"
            if self.budget < 0:
                self.stop(block.start + 1)
                return []
            try:
                tree = parse_tree(text)
            except SyntaxProblem as problem:
                # LALR stops at the error: the work done is the text up to it.
                self.budget -= sum(len(line) + 1 for line in body[: problem.line])
                problem.line += block.start
                self.report(problem)
                if self.stopped:
                    return []
                index = problem.line - 1 - block.start
                if index <= 0 or index >= len(body) or replaced.get(index, 0) >= 2:
                    return []  # the header itself is wrong: the block is one mistake
                replaced[index] = replaced.get(index, 0) + 1
                if problem.indent:
                    _blank_indented_run(body, index)
                elif replaced[index] == 1:
                    body[index] = indent + PLACEHOLDER
                else:
                    body[index] = ""
                continue
            self.budget -= len(text)
            items = Builder(text, block.start).items(tree)
            return [_without_placeholders(item) for item in items]


def _body_indent(body: list[str]) -> str:
    for line in body[1:]:
        stripped = line.lstrip(" \t")
        if stripped and not stripped.startswith("#"):
            return line[: len(line) - len(stripped)]
    return "    "


def _blank_indented_run(body: list[str], index: int) -> None:
    depth = len(body[index]) - len(body[index].lstrip(" \t"))
    for position in range(index, len(body)):
        line = body[position]
        stripped = line.lstrip(" \t")
        if stripped and len(line) - len(stripped) < depth:
            break
        body[position] = ""


def _without_placeholders(item: Item) -> Item:
    kept = tuple(
        clause
        for clause in item.clauses
        if not (isinstance(clause, PhraseClause) and clause.text == PLACEHOLDER)
    )
    if isinstance(item, RuleDecl):
        return RuleDecl(item.name, item.name_span, item.title, kept, item.inline, item.span)
    return type(item)(kept, item.span)
