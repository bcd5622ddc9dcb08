"""Inputs cut by bytes, each block's chunk found where the work runs (the Dask engine).

The local engine finds its chunks with one scan for newlines in the ``paysplit``
process (:func:`paysplit.batch_spec.iter_chunks`), alongside the work. A Dask
cluster's driver cannot do that: a bag is made from its partitions, so the scan would
come first, one process reading every input byte (from shared storage, on a real
cluster) while every worker waits. At 10 million accounts (46 GB) that serial read
is longer than the work itself on a cluster of twenty.

So the driver only cuts each input into byte ranges (:func:`cut_blocks`, from the
file's size and the length of its first lines: about ``chunk_size`` account lines
each), the cluster's workers find each block's account lines in parallel
(:func:`lines_in_block`: the lines that *start* in the block, the last one read to
its end), and the driver numbers them (:func:`chunks_of_blocks`: each chunk's first
line is the line after the chunk before it). The chunks are the same kind the local
engine makes, and together they hold exactly the lines :func:`scan_lines` finds
(``tests/test_batch_blocks.py``), so the output is the same bytes either way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from paysplit.batch_spec import Chunk, InputFile, input_changed, name_input

__all__ = ["Block", "BlockLines", "chunks_of_blocks", "cut_blocks", "lines_in_block"]

_READ = 1 << 18
"""Bytes read at a time."""
_NEWLINE = ord("\n")
_LINE_READ = 1 << 14
"""Bytes read first when looking for the end of a line."""
_SAMPLE = 1 << 20
"""Bytes of each input read by the driver to learn how long its lines are."""


@dataclass(frozen=True)
class Block:
    """A byte range of one input: its chunk is the account lines that start in it."""

    file: InputFile
    start: int
    end: int
    size: int
    """The input's size when it was cut: a worker that finds another stops the run."""


@dataclass(frozen=True)
class BlockLines:
    """The account lines that start in a block: from ``start`` to ``end`` (the last
    one read to its end, past the block), ``lines`` of them."""

    start: int
    end: int
    lines: int


def cut_blocks(inputs: Sequence[InputFile], chunk_size: int) -> list[Block]:
    """Each input cut into byte ranges of about ``chunk_size`` account lines.

    Only each file's size and its first MiB are read: the length of its first lines
    sizes the blocks. Any size gives the same lines; it only sets how many chunks
    there are (an input whose later lines are much longer gets chunks of fewer lines).
    """
    blocks: list[Block] = []
    for file in inputs:
        try:
            with open(file.path, "rb") as stream:
                size = os.fstat(stream.fileno()).st_size
                sample = stream.read(_SAMPLE)
        except OSError as error:
            name_input(error, file)
            raise
        line_bytes = max(1, len(sample) // max(1, sample.count(b"\n")))
        step = max(1, line_bytes * chunk_size)
        blocks.extend(Block(file, at, min(at + step, size), size) for at in range(0, size, step))
    return blocks


def lines_in_block(block: Block) -> BlockLines | None:
    """The account lines that start in ``block`` (None when none does: the block lies
    inside one line, or holds only the header). Run by a worker, block by block.

    A line starts at a byte that follows a newline; the header (line 1, from byte 0)
    is not an account line. The last line that starts in the block is read to its
    newline, or to the end of the file when it has none. An input whose size is not
    the one it was cut at raises ``OSError`` ("the file changed while the batch read
    it"): its lines would not be the ones the other blocks found.
    """
    try:
        with open(block.file.path, "rb", buffering=0) as stream:
            if os.fstat(stream.fileno()).st_size != block.size:
                raise input_changed(block.file)
            # A line starts in the block after a newline before its last byte: looked for
            # only up to there (a block inside a long line would otherwise read the rest
            # of the line, and a line over k blocks be read k times over).
            if block.start == 0:
                start = _past_newline(stream, 0, block.end - 1)  # the header is no account
            else:
                stream.seek(block.start - 1)
                follows_newline = stream.read(1) == b"\n"
                start = (
                    block.start
                    if follows_newline
                    else _past_newline(stream, block.start, block.end - 1)
                )
            if start is None:
                return None
            stream.seek(start)
            # Into one buffer: a new bytes object per read costs as much as the count.
            buffer = bytearray(min(_READ, block.end - start))
            view = memoryview(buffer)
            at, newlines, ended = start, 0, True
            while at < block.end:
                got = stream.readinto(view[: block.end - at])
                if not got:
                    raise input_changed(block.file)  # shorter than it was a moment ago
                newlines += buffer.count(b"\n", 0, got)
                at += got
                ended = buffer[got - 1] == _NEWLINE
            end, unterminated = at, 0
            if not ended:  # the last line goes on past the block: read it to its end
                found = _past_newline(stream, at)
                if found is None:
                    end, unterminated = stream.seek(0, os.SEEK_END), 1
                else:
                    end, newlines = found, newlines + 1
    except OSError as error:
        name_input(error, block.file)
        raise
    return BlockLines(start, end, newlines + unterminated)


def chunks_of_blocks(
    blocks: Sequence[Block], found: Iterable[BlockLines | None]
) -> Iterator[Chunk]:
    """The chunks of ``blocks`` in order, numbered as :func:`paysplit.batch_spec.iter_chunks`
    numbers them, from what :func:`lines_in_block` found in each block."""
    index = 0
    file: InputFile | None = None
    first_line = expected = 0
    for block, lines in zip(blocks, found, strict=True):
        if block.file != file:
            file, first_line, expected = block.file, 2, -1
        if lines is None:
            continue
        if expected >= 0 and lines.start != expected:
            raise input_changed(block.file)
        yield Chunk(index, block.file, lines.start, lines.end, first_line, lines.lines)
        index += 1
        first_line += lines.lines
        expected = lines.end


def _past_newline(stream: BinaryIO, at: int, before: int | None = None) -> int | None:
    """The offset just past the first newline at or after ``at`` (and before ``before``,
    when given); None when there is none."""
    stream.seek(at)
    size = _LINE_READ
    while before is None or at < before:
        read = stream.read(size if before is None else min(size, before - at))
        size = _READ  # (a line is mostly a few KB: the first read is small)
        if not read:
            return None
        newline = read.find(b"\n")
        if newline >= 0:
            return at + newline + 1
        at += len(read)
    return None
