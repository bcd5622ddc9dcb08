"""Reading rule-file text safely: limits, decoding, and the scan before Lark sees it.

Hostile input is turned away here with one clear diagnostic, before any
parsing: a file that is too large, binary (NUL bytes), not UTF-8, empty, or
nested too deeply. Everything is a single linear pass; nothing recurses.
The other helpers split a file into lines, top-level blocks and comments
the same way the parser counts lines (at ``\\n`` only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from paysplit.errors import Diagnostic
from paysplit.syntax import Comment

MAX_BYTES = 64 * 1024
"""The largest rule file accepted (about a thousand rules); real ones are a few kilobytes."""
MAX_NESTING = 32
"""How deeply parentheses may nest within one line."""
MAX_RULES = 1_000
"""The most rules one file may hold."""

_BOM = "\ufeff"
_LINE_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|#.*|[()]')
_TOP_LEVEL_KEYWORD = re.compile(r"(?:rule|settings)(?![A-Za-z0-9_-])")


def read_bytes(path: str | Path) -> bytes:
    """Read at most one byte more than :data:`MAX_BYTES` (enough to refuse a huge file)."""
    with open(path, "rb") as handle:
        return handle.read(MAX_BYTES + 1)


def decode(file: str, data: bytes) -> tuple[str | None, Diagnostic | None]:
    """The file's text, or the one diagnostic that says why it cannot be a rule file."""
    if len(data) > MAX_BYTES:
        return None, _whole_file(
            file,
            f"the file is larger than {MAX_BYTES // 1024} KB; a rule file holds a few rules",
            "split it, or check that this is the rule file you meant",
        )
    nul = data.find(b"\x00")
    if nul >= 0:
        line, column = _byte_position(data, nul)
        return None, Diagnostic(
            file,
            line,
            column,
            "the file holds NUL bytes: it is a binary file, not a rule file",
            "give paysplit the .rules text file",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _byte_position(data, exc.start)
        return None, Diagnostic(
            file,
            line,
            column,
            f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x} cannot start a character)",
            "save the rule file as UTF-8",
        )
    if text.startswith(_BOM):
        text = text[1:]
    return text, None


def prescan(file: str, text: str) -> Diagnostic | None:
    """Refuse an empty, enormous or too deeply nested text before it reaches the parser."""
    if len(text) > MAX_BYTES:
        return _whole_file(
            file,
            f"the text is larger than {MAX_BYTES // 1024} KB; a rule file holds a few rules",
            "split it, or check that this is the rule file you meant",
        )
    if not text.strip():
        return _whole_file(
            file,
            "the file is empty: a rule file holds rules",
            "write a rule such as: rule pay_oldest: oldest first",
        )
    for number, line in enumerate(split_lines(text), start=1):
        if "(" not in line:
            continue
        depth = 0
        for token in _LINE_TOKENS.finditer(line):
            if token.group() == "(":
                depth += 1
                if depth > MAX_NESTING:
                    return Diagnostic(
                        file,
                        number,
                        token.start() + 1,
                        f"parentheses are nested more than {MAX_NESTING} deep",
                        "write the condition more simply",
                        source_line=line,
                    )
            elif token.group() == ")":
                depth = max(0, depth - 1)
    return None


def split_lines(text: str) -> list[str]:
    """Lines as the parser counts them (at ``\\n``), without their line ends."""
    return [line.rstrip("\r") for line in text.split("\n")]


def comments(lines: list[str]) -> list[Comment]:
    """Every ``#`` comment outside a string, with its position."""
    found: list[Comment] = []
    for number, line in enumerate(lines, start=1):
        if "#" not in line:
            continue
        for token in _LINE_TOKENS.finditer(line):
            if token.group().startswith("#"):
                text = token.group().rstrip()
                own = not line[: token.start()].strip()
                found.append(Comment(number, token.start() + 1, text, own))
                break
    return found


@dataclass(frozen=True)
class Block:
    """Lines ``start`` to ``end`` (0-based, end exclusive) of one top-level item."""

    start: int
    end: int
    keyword: bool
    """True when the block starts with ``rule`` or ``settings``."""


def blocks(lines: list[str]) -> list[Block]:
    """Split at every line that starts in column 1; lines that start with neither
    ``rule`` nor ``settings`` are joined into one block, so stray text (or a file
    that is not a rule file at all) is one mistake, not one per line."""
    starts: list[tuple[int, bool]] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indented = line[0] in " \t"
        if indented and starts:
            continue
        keyword = not indented and bool(_TOP_LEVEL_KEYWORD.match(line))
        if starts and not keyword and not starts[-1][1]:
            continue  # joins the stray block before it
        starts.append((index, keyword))
    found: list[Block] = []
    for position, (start, keyword) in enumerate(starts):
        end = starts[position + 1][0] if position + 1 < len(starts) else len(lines)
        found.append(Block(start, end, keyword))
    return found


def _whole_file(file: str, message: str, hint: str) -> Diagnostic:
    return Diagnostic(file, 1, 1, message, hint)


def _byte_position(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return line, column
