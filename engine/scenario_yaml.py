"""The YAML of a scenario file, read so that nothing changes on the way in.

This module owns turning a scenario file's text into one YAML document, and
:class:`ScenarioFileError`, the one error a bad file raises, at its file and
line with the line quoted. The document is made of :class:`Node` (mappings),
:class:`Items` (lists), :class:`Number` and text; every mapping and list
remembers its own line and the line of each key or item, so that whatever is
wrong with a value later is reported where it was written.

No number ever becomes a float: every number keeps the text it was written with
(``150.00`` is exactly 150.00, ``12.345`` is an error later, never 12.35), dates
stay text until they are parsed as dates, and only ``true``/``false`` are
booleans (``no`` and ``off`` are words). A key given twice in one mapping is an
error: YAML would silently keep only the last.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from paysplit.errors import Diagnostic, PaysplitError
from paysplit.money import JsonNumber

__all__ = [
    "Items",
    "Mark",
    "Node",
    "Number",
    "ScenarioFileError",
    "ScenarioText",
    "describe",
    "index_lines",
    "line_of_path",
    "plain",
    "quote",
]

Mark = tuple[int, int]
"""A place in the file: line and column, both counted from 1."""


class ScenarioFileError(PaysplitError):
    """A scenario file that cannot be used: one clear error with its file and line."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        self.diagnostic = diagnostic
        super().__init__(f"{diagnostic.file}:{diagnostic.line}: {diagnostic.message}")

    @classmethod
    def at(cls, file: str, line: int, message: str, hint: str = "") -> ScenarioFileError:
        """An error about a whole line (no column, no quoted source): a missing file, a
        run date nobody gave."""
        return cls(Diagnostic(file=file, line=line, column=1, message=message, hint=hint))

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


class Number(JsonNumber):
    """A number in a scenario file, kept as the text it was written with."""

    __slots__ = ()


class Node(dict[str, Any]):
    """A YAML mapping that remembers its line and the line of each key."""

    line: int = 0
    column: int = 0
    key_marks: dict[str, Mark]

    def line_of(self, key: str) -> int:
        return self.key_marks.get(key, (self.line, self.column))[0]

    def mark_of(self, key: str) -> Mark:
        return self.key_marks.get(key, (self.line, self.column))


class Items(list[Any]):
    """A YAML sequence that remembers its line and each item's line."""

    line: int = 0
    column: int = 0
    item_marks: list[Mark]

    def mark_of(self, index: int) -> Mark:
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


def _mark(yaml_mark: Any) -> Mark:
    # PyYAML counts lines and columns from 0; people (and editors) count from 1.
    return yaml_mark.line + 1, yaml_mark.column + 1


def _construct_number(loader: _Loader, node: yaml.Node) -> Number:
    assert isinstance(node, yaml.ScalarNode)
    return Number(loader.construct_scalar(node))


def _construct_text(loader: _Loader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


def _construct_map(loader: _Loader, node: yaml.Node) -> Iterator[Node]:
    assert isinstance(node, yaml.MappingNode)
    data = Node()
    data.line, data.column = _mark(node.start_mark)
    data.key_marks = {}
    yield data
    explicit = [key_node for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge"]
    explicit_ids = {id(key_node) for key_node in explicit}
    loader.flatten_mapping(node)
    seen: dict[str, Mark] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, bool) or key is None or not isinstance(key, str):
            raise _YamlProblem(
                f"a key must be text, not {key!r}", key_node.start_mark, "quote the key"
            )
        key = str(key)
        # Keys merged in with << may repeat a key written here (that is what merging is
        # for); only keys written out in this mapping itself must be unique.
        if id(key_node) in explicit_ids:
            if key in seen:
                first = seen[key][0]
                raise _YamlProblem(
                    f"key {key!r} is given twice in this mapping (first on line {first})",
                    key_node.start_mark,
                    "remove one of them: YAML would silently keep only the last",
                )
            seen[key] = _mark(key_node.start_mark)
        data.key_marks[key] = _mark(key_node.start_mark)
        data[key] = loader.construct_object(value_node, deep=True)


def _construct_seq(loader: _Loader, node: yaml.Node) -> Iterator[Items]:
    assert isinstance(node, yaml.SequenceNode)
    data = Items()
    data.line, data.column = _mark(node.start_mark)
    data.item_marks = [_mark(child.start_mark) for child in node.value]
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


class ScenarioText:
    """A scenario file's text: its one YAML document, and errors that quote its lines."""

    def __init__(self, shown: str, text: str) -> None:
        self.shown = shown
        self.source = text
        self.lines = text.splitlines()

    def error(self, message: str, mark: Mark, hint: str = "", width: int = 1) -> ScenarioFileError:
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

    def document(self) -> Any:
        """The file's one YAML document; anything else is a :class:`ScenarioFileError`."""
        if "\x00" in self.source:
            raise self.error("this is not a text file (it holds NUL bytes)", (1, 1))
        try:
            documents = list(yaml.load_all(self.source, Loader=_Loader))
        except _YamlProblem as problem:
            raise self.error(str(problem), _mark(problem.mark), problem.hint) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = _mark(mark) if mark is not None else (1, 1)
            message = exc.problem or exc.context or "this is not valid YAML"
            context = f" ({exc.context})" if exc.context and exc.problem else ""
            raise self.error(f"not valid YAML: {message}{context}", where) from None
        except yaml.YAMLError as exc:
            raise self.error(f"not valid YAML: {exc}", (1, 1)) from None
        except RecursionError:
            raise self.error(
                "the YAML is nested too deeply to be a scenario file", (1, 1)
            ) from None
        if not documents or documents == [None]:
            raise self.error(
                "the file is empty: a scenario file has rules:, ledger: and scenarios:", (1, 1)
            )
        if len(documents) > 1:
            raise self.error("a scenario file holds one YAML document, not several", (1, 1))
        return documents[0]


def plain(value: Any) -> Any:
    """A loaded YAML value as plain dicts, lists and text (numbers stay :class:`Number`)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def index_lines(value: Any, path: str, into: dict[str, int]) -> None:
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


def line_of_path(lines: Mapping[str, int], path: str, default: int) -> int:
    """The line of the deepest part of ``path`` that the file has."""
    probe = path
    while probe:
        if probe in lines:
            return lines[probe]
        cut = max(probe.rfind("."), probe.rfind("["))
        probe = probe[:cut] if cut > 0 else ""
    return default


def describe(value: Any) -> str:
    """What a loaded value is, in the words of an error message: "the number 12"."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, Number):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {quote(value)}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def quote(value: Any) -> str:
    """A value quoted for an error message, cut short so a long one cannot flood it."""
    text = repr(str(value)) if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
