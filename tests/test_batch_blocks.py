"""The Dask engine's chunks, found block by block, hold exactly the local scan's lines.

:mod:`paysplit.batch_blocks` cuts an input into byte ranges, finds the account lines
that start in each (as a Dask worker does) and numbers them; the chunks must give the
same lines, with the same numbers, as :func:`paysplit.batch_spec.scan_lines`, for any
content and any cut: long lines across many blocks, blank lines, no newline at the
end, a header with nothing after it or no newline at all.
"""

from __future__ import annotations

import errno
import io
import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paysplit import batch_blocks, batch_spec
from paysplit.batch_blocks import (
    Block,
    BlockLines,
    chunks_of_blocks,
    cut_blocks,
    lines_in_block,
)
from paysplit.batch_spec import Chunk, InputFile, iter_chunks


def _input(path: Path, index: int = 0) -> InputFile:
    return InputFile(index, path.name, str(path), path.stem + ".plans.jsonl")


def _numbered_lines(chunks: list[Chunk]) -> list[tuple[str, int, bytes]]:
    """(file, line number, line) of every line of the chunks, as a worker reads them."""
    found = []
    for chunk in chunks:
        data = Path(chunk.file.path).read_bytes()[chunk.start : chunk.end]
        lines = [line + b"\n" for line in data.split(b"\n")]
        lines[-1] = lines[-1][:-1]  # (what follows the last newline: b"" or an unended line)
        if not lines[-1]:
            lines.pop()
        assert len(lines) == chunk.lines
        found.extend(
            (chunk.file.name, number, line)
            for number, line in enumerate(lines, start=chunk.first_line)
        )
    return found


def _blocks(file: InputFile, step: int) -> list[Block]:
    size = Path(file.path).stat().st_size
    return [Block(file, at, min(at + step, size), size) for at in range(0, size, step)]


def _by_blocks(blocks: list[Block]) -> list[Chunk]:
    return list(chunks_of_blocks(blocks, [lines_in_block(b) for b in blocks]))


_LINE = st.one_of(
    st.just(b""),  # a blank line
    st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"x")),
    st.integers(1, 90).map(lambda n: b"y" * n),  # longer than many blocks
)


def _every_line(content: bytes, name: str) -> list[tuple[str, int, bytes]]:
    """The account lines of ``content`` numbered from 2, the plain way."""
    if b"\n" not in content:
        return []
    lines = [line + b"\n" for line in content.split(b"\n")[1:]]
    lines[-1] = lines[-1][:-1]
    if not lines[-1]:
        lines.pop()
    return [(name, number, line) for number, line in enumerate(lines, start=2)]


@settings(max_examples=300, deadline=None)
@given(
    header=st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"h")),
    lines=st.lists(_LINE, max_size=25),
    terminated=st.booleans(),
    header_ends=st.booleans(),
    step=st.integers(1, 40),
    chunk_size=st.integers(1, 6),
    scan_block=st.integers(1, 50),
    block_read=st.integers(1, 20),
    line_read=st.integers(1, 20),
)
def test_chunks_found_block_by_block_hold_the_scans_lines(
    tmp_path_factory: pytest.TempPathFactory,
    header: bytes,
    lines: list[bytes],
    terminated: bool,
    header_ends: bool,
    step: int,
    chunk_size: int,
    scan_block: int,
    block_read: int,
    line_read: int,
) -> None:
    content = header + (b"\n" + b"\n".join(lines) if header_ends else b"")
    if header_ends and lines and terminated:
        content += b"\n"
    path = tmp_path_factory.mktemp("blocks") / "east.jsonl"
    path.write_bytes(content)
    file = _input(path)

    with pytest.MonkeyPatch.context() as patch:  # every read as small as a few bytes
        patch.setattr(batch_spec, "_BLOCK", scan_block)
        patch.setattr(batch_blocks, "_READ", block_read)
        patch.setattr(batch_blocks, "_LINE_READ", line_read)
        scanned = list(iter_chunks([file], chunk_size))
        by_blocks = _by_blocks(_blocks(file, step))

    assert _numbered_lines(scanned) == _every_line(content, "east.jsonl")
    assert all(c.lines == chunk_size for c in scanned[:-1])
    assert _numbered_lines(by_blocks) == _numbered_lines(scanned)
    assert [c.index for c in by_blocks] == list(range(len(by_blocks)))
    if by_blocks:  # one after the other, from the header's end to the file's
        assert by_blocks[0].start == scanned[0].start
        assert all(a.end == b.start for a, b in itertools.pairwise(by_blocks))
        assert by_blocks[-1].end == len(content)
    assert _numbered_lines(_by_blocks(cut_blocks([file], chunk_size))) == _numbered_lines(scanned)


def test_chunks_are_numbered_across_inputs_and_each_file_from_line_2(tmp_path: Path) -> None:
    east, west = tmp_path / "east.jsonl", tmp_path / "west.jsonl"
    east.write_bytes(b"H\n" + b"".join(b"e%d\n" % n for n in range(7)))
    west.write_bytes(b"H\n\nw0\nw1")  # a blank line, and no newline at the end
    files = [_input(east, 0), _input(west, 1)]
    blocks = [*_blocks(files[0], 5), *_blocks(files[1], 5)]

    chunks = _by_blocks(blocks)

    # East: "H\n" then "eN\n" at bytes 2, 5, 8, ...; 5-byte blocks [0,5) [5,10) ...
    assert [(c.index, c.file.name, c.start, c.end, c.first_line, c.lines) for c in chunks] == [
        (0, "east.jsonl", 2, 5, 2, 1),  # e0 starts in [0,5) after the header
        (1, "east.jsonl", 5, 11, 3, 2),  # e1 and e2 start in [5,10); e2 is read to its end
        (2, "east.jsonl", 11, 17, 5, 2),  # [10,15) starts inside e2: e3 and e4
        (3, "east.jsonl", 17, 20, 7, 1),
        (4, "east.jsonl", 20, 23, 8, 1),
        (5, "west.jsonl", 2, 6, 2, 2),  # the blank line and w0
        (6, "west.jsonl", 6, 8, 4, 1),  # w1, with no newline after it
    ]
    assert _numbered_lines(chunks) == _numbered_lines(list(iter_chunks(files, 2)))


def test_blocks_are_sized_by_the_first_lines_to_about_chunk_size_lines(tmp_path: Path) -> None:
    path = tmp_path / "east.jsonl"
    path.write_bytes(b"H" * 9 + b"\n" + b"x" * 9 + b"\n" + b"y" * 99 + b"\n")  # 10-byte lines first
    file = _input(path)
    assert cut_blocks([file], 1) == [
        Block(file, 0, 40, 120),  # 120 bytes, 3 lines in the first MiB: 40 bytes a line
        Block(file, 40, 80, 120),
        Block(file, 80, 120, 120),
    ]
    assert [lines_in_block(b) for b in cut_blocks([file], 1)] == [
        BlockLines(10, 120, 2),  # the long line starts in the first block: read to its end
        None,
        None,
    ]
    assert cut_blocks([file], 2) == [Block(file, 0, 80, 120), Block(file, 80, 120, 120)]
    assert cut_blocks([file], 1000) == [Block(file, 0, 120, 120)]
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert cut_blocks([_input(empty)], 3) == []


def test_a_file_that_changed_between_blocks_stops_the_run_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "east.jsonl"
    path.write_bytes(b"H\na\nb\nc\n")
    file = _input(path)
    blocks = _blocks(file, 4)
    found = [lines_in_block(b) for b in blocks]
    assert found == [BlockLines(2, 4, 1), BlockLines(4, 8, 2)]
    moved = [found[0], BlockLines(5, 8, 1)]  # as if a line had grown under the second block
    with pytest.raises(OSError) as raised:
        list(chunks_of_blocks(blocks, moved))
    assert raised.value.filename == str(path)
    assert raised.value.strerror == "the file changed while the batch read it"


def test_a_read_error_names_the_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "east.jsonl"
    path.write_bytes(b"H\na\nb\n")
    file = _input(path)
    real_open = open

    class FailingRead:
        def __init__(self, stream: object) -> None:
            self.stream = stream

        def __enter__(self) -> FailingRead:
            return self

        def __exit__(self, *exc: object) -> None:
            self.stream.close()  # type: ignore[attr-defined]

        def fileno(self) -> int:
            return self.stream.fileno()  # type: ignore[attr-defined,no-any-return]

        def seek(self, *args: int) -> int:
            return self.stream.seek(*args)  # type: ignore[attr-defined,no-any-return]

        def read(self, size: int = -1) -> bytes:
            raise OSError(errno.EIO, "Input/output error")  # read() names no file

        def readinto(self, buffer: object) -> int:
            raise OSError(errno.EIO, "Input/output error")

    def failing_open(name: str, mode: str = "r", *args: Any, **kwargs: Any) -> object:
        if name == str(path):
            return FailingRead(real_open(name, mode))
        return real_open(name, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", failing_open)
    for call in (lambda: lines_in_block(Block(file, 0, 6, 6)), lambda: cut_blocks([file], 2)):
        with pytest.raises(OSError) as raised:
            call()
        assert raised.value.filename == str(path)
        assert raised.value.strerror == "Input/output error"


def test_a_file_cut_at_another_size_stops_the_run_naming_it(tmp_path: Path) -> None:
    # Appended to or cut short after the driver cut it: its lines are not the ones the
    # other blocks found (nor all of them), so no block counts it.
    path = tmp_path / "east.jsonl"
    path.write_bytes(b"H\na\nb\nc\n")
    file = _input(path)
    blocks = _blocks(file, 4)
    assert [lines_in_block(b) for b in blocks] == [BlockLines(2, 4, 1), BlockLines(4, 8, 2)]
    for changed in (b"H\na\nb\nc\nd\n", b"H\na\nb"):
        path.write_bytes(changed)
        for block in blocks:
            with pytest.raises(OSError) as raised:
                lines_in_block(block)
            assert raised.value.filename == str(path)
            assert raised.value.strerror == "the file changed while the batch read it"


def test_a_block_longer_than_one_read_counts_each_line_once(tmp_path: Path) -> None:
    path = tmp_path / "east.jsonl"
    lines = [b"a%06d\n" % n for n in range(50_000)]  # 400,000 bytes: more than one read
    path.write_bytes(b"H\n" + b"".join(lines))
    file = _input(path)
    size = path.stat().st_size
    assert lines_in_block(Block(file, 0, size, size)) == BlockLines(2, 400_002, 50_000)
    assert lines_in_block(Block(file, 0, 300_001, size)) == BlockLines(2, 300_002, 37_500)


def test_a_line_longer_than_every_read_is_read_whole_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "east.jsonl"
    long_line = b"x" * 700_000 + b"\n"  # longer than a read (256 KiB) and the sample (1 MiB / 2)
    path.write_bytes(b"H\n" + b"a\n" + long_line + b"b\n" + long_line + b"c")
    file = _input(path)
    blocks = _blocks(file, 100_000)
    read: list[int] = []

    class Counted(io.FileIO):
        def read(self, size: int = -1) -> bytes:
            got = super().read(size) or b""
            read.append(len(got))
            return got

        def readinto(self, buffer: Any) -> int:
            got = super().readinto(buffer) or 0
            read.append(got)
            return got

    monkeypatch.setattr(batch_blocks, "open", lambda name, *_, **__: Counted(name), raising=False)
    chunks = _by_blocks(blocks)
    assert [(c.first_line, c.lines) for c in chunks] == [(2, 2), (4, 2), (6, 1)]
    assert _numbered_lines(chunks) == _every_line(path.read_bytes(), "east.jsonl")
    # Each line is read to its end once, by the block it starts in; the blocks inside it
    # look only as far as their own end for a line that starts in them: each byte is read
    # twice at most (and a read past a newline). Searching each inner block to the end
    # of the line read 6.7 MB here: quadratic in the length of a line.
    assert sum(read) < 3 * path.stat().st_size
