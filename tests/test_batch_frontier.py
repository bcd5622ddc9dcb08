"""The local pool's plans files written in chunk order by whoever finishes the next chunk.

``paysplit.batch_frontier``: a worker writes its chunk's plan lines into the plans file
only when every chunk before it is written; the driver appends the part files of the
chunks that finished early, in turn. These tests drive both sides in one process, in
orders a pool could finish in. ``tests/test_batch.py`` holds whole runs of two workers
to one worker's bytes.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from paysplit.batch_frontier import Frontier, PlanSpool, WorkerLost


def _frontier() -> Frontier:
    return Frontier(multiprocessing.get_context("spawn"))


def test_only_the_next_chunk_is_written_and_the_driver_appends_the_others_in_turn(
    tmp_path: Path,
) -> None:
    plans = tmp_path / "plans.jsonl"
    plans.write_bytes(b"")
    frontier = _frontier()
    appended: list[int] = []

    def driver_appends(index: int) -> None:
        with open(plans, "ab") as sink:
            sink.write(f"chunk {index} (part)\n".encode())
        appended.append(index)

    # Chunk 1 finishes first: it is not next, so nothing is written.
    assert not frontier.write_if_next(1, b"chunk 1\n", str(plans))
    assert plans.read_bytes() == b"" and frontier.next_index == 0
    assert frontier.write_if_next(0, b"chunk 0\n", str(plans))
    frontier.append_next(1, lambda: driver_appends(1))
    assert frontier.write_if_next(2, memoryview(b"chunk 2\n"), str(plans))
    assert frontier.write_if_next(3, b"", str(plans))  # a chunk without plans moves it on

    assert plans.read_bytes() == b"chunk 0\nchunk 1 (part)\nchunk 2\n"
    assert frontier.next_index == 4 and appended == [1]


def test_the_driver_refuses_to_append_a_chunk_out_of_turn(tmp_path: Path) -> None:
    frontier = _frontier()
    called: list[bool] = []
    with pytest.raises(RuntimeError, match=r"^chunk 2 was to be appended, but chunk 0 is next$"):
        frontier.append_next(2, lambda: called.append(True))
    assert called == [] and frontier.next_index == 0


def _hold_the_lock_and_die(frontier: Frontier) -> None:
    frontier._next.get_lock().acquire()
    os._exit(9)  # as a worker killed mid-write: the lock is never given back


def test_the_driver_stops_waiting_for_a_lock_that_a_dead_worker_held() -> None:
    fork = multiprocessing.get_context("fork")
    frontier = Frontier(fork)
    dead = fork.Process(target=_hold_the_lock_and_die, args=(frontier,))
    dead.start()
    dead.join()
    assert dead.exitcode == 9
    asked: list[bool] = []

    def abandon() -> bool:  # the pool is known lost at the third question
        asked.append(True)
        return len(asked) == 3

    appended: list[bool] = []
    with pytest.raises(WorkerLost, match=r"^a worker process ended before it finished"):
        frontier.append_next(0, lambda: appended.append(True), abandon)
    assert len(asked) == 3 and appended == []


def test_a_spool_holds_lines_in_memory_up_to_its_limit_then_moves_them_to_the_part(
    tmp_path: Path,
) -> None:
    part = tmp_path / "0.plans"
    small = PlanSpool(str(part), 1 << 20, limit=16)
    small.write(b"0123456789\n")
    assert bytes(small.in_memory() or b"") == b"0123456789\n" and not part.exists()
    small.write(b"abcdef\n")  # 18 bytes: past the limit
    assert small.in_memory() is None
    small.write(b"more\n")
    small.to_part()
    assert part.read_bytes() == b"0123456789\nabcdef\nmore\n"
    assert small.size == 23


def test_a_spool_still_in_memory_goes_whole_to_its_part_when_asked(tmp_path: Path) -> None:
    part = tmp_path / "1.plans"
    spool = PlanSpool(str(part), 1 << 20)
    spool.write(b"line one\n")
    spool.write(b"line two\n")
    spool.to_part()
    assert part.read_bytes() == b"line one\nline two\n" and spool.size == 18
    with pytest.raises(ValueError, match=r"^the chunk's plan lines are already in its part file$"):
        spool.write(b"too late\n")
    assert spool.size == 18
