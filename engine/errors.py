"""Every error paysplit reports on purpose, with its exit code and location.

Bad input of any kind ends in one of these, never in a traceback: the CLI,
the pytest plugin and batch runners print :meth:`PaysplitError.render` and
exit with :attr:`PaysplitError.exit_code` (2 bad input, 3 blocked or refused).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

# Control characters from a rule file must never reach a terminal raw: an ANSI
# escape could clear the screen or forge a line of output. Tab and newline are
# handled by the layout itself.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def escape_control(text: str) -> str:
    """``text`` with every control character written as a Python escape (``\\x1b``)."""
    return _CONTROL.sub(lambda found: repr(found.group())[1:-1], text)


@dataclass(frozen=True)
class Problem:
    """One problem in a ledger document, at a JSON path.

    For example ``accounts[0].charges[3].amount``.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


@dataclass(frozen=True)
class Diagnostic:
    """One error or warning in a rule file, with the line it is on and a caret under the spot."""

    file: str
    line: int
    column: int
    message: str
    hint: str = ""
    severity: Literal["error", "warning"] = "error"
    source_line: str = ""
    width: int = 1
    """How many characters the caret underline covers."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", escape_control(self.message))
        object.__setattr__(self, "hint", escape_control(self.hint))

    def render(self) -> str:
        head = f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}"
        lines = [head]
        if self.source_line:
            # The line is shown without its own indentation, the caret moved with it.
            # One replacement character per control character keeps the caret aligned.
            raw = _CONTROL.sub("\ufffd", self.source_line.rstrip("\r\n"))
            shown = raw.expandtabs(4)
            caret = len(raw[: max(0, self.column - 1)].expandtabs(4))
            indent = min(len(shown) - len(shown.lstrip(" ")), caret)
            shown, caret = shown[indent:], caret - indent
            if caret > 120:
                cut = caret - 40
                shown, caret = "..." + shown[cut:], caret - cut + 3
            if len(shown) > 160:
                shown = shown[:157] + "..."
            lines.append(f"    {shown}")
            lines.append(" " * (4 + caret) + "^" + "~" * max(0, min(self.width, 160) - 1))
        if self.hint:
            lines.append(f"  {self.hint}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "hint": self.hint,
        }


class PaysplitError(Exception):
    """Base of every error paysplit reports to its user."""

    exit_code = 2

    def render(self) -> str:
        return f"error: {self}"

    def to_json(self) -> dict[str, Any]:
        return {"error": str(self)}


class UsageError(PaysplitError):
    """A command-line argument or API argument that cannot be used."""


class WriteError(PaysplitError):
    """A file could not be written; the file that was there is unchanged."""


class LedgerError(PaysplitError):
    """A ledger that cannot be loaded: every problem found, each with its path."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"{source}: {len(self.problems)} {noun}")

    def render(self) -> str:
        lines = [f"error: {self.source} cannot be loaded ({self.args[0].split(': ', 1)[1]}):"]
        lines += [f"  {problem}" for problem in self.problems]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"file": self.source, "errors": [p.to_json() for p in self.problems]}


class RuleFileError(PaysplitError):
    """Rule files with errors given to an operation."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = [d for d in diagnostics if d.severity == "error"]
        super().__init__(f"{len(self.diagnostics)} error(s) in the rule files")

    def render(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)

    def to_json(self) -> dict[str, Any]:
        return {"errors": [d.to_json() for d in self.diagnostics]}


class PluginError(PaysplitError):
    """A plugin that failed to load, declared something invalid, raised, or returned
    something the engine refuses. The ledger is never touched."""

    def __init__(self, plugin: str, message: str) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin}: {message}")


@dataclass
class Refusal:
    """Why a policy blocked an operation or a guard refused a manual one."""

    reason: str
    clause: str | None = None
    plugin: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Blocked(PaysplitError):
    """A policy blocked the operation or a guard refused a manual one: exit 3, nothing written."""

    exit_code = 3

    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal
        super().__init__(refusal.reason)

    def render(self) -> str:
        where = f" ({self.refusal.clause})" if self.refusal.clause else ""
        return f"blocked: {self.refusal.reason}{where}"
