"""A batch run's output folder: temporaries while the run goes, renamed into place at the end.

:class:`OutputFolder` owns the ``out`` folder's files: the plans file of each input, the
errors file and the summary, written as temporaries, the chunks' part files appended
in chunk order (so the output is the same bytes whatever the engine and the number of
workers), then fsynced and renamed only once the whole run succeeded; after a
failure every temporary is removed and the files already there are as they were.
:func:`error_line` is the format of an ``errors.jsonl`` line, which the workers write.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from paysplit.atomic import sync_folder
from paysplit.batch_frontier import Frontier, write_all
from paysplit.batch_spec import (
    ERRORS_FILE,
    SUMMARY_FILE,
    BatchError,
    Chunk,
    ChunkResult,
    Counts,
    InputFile,
    Summary,
)
from paysplit.errors import LedgerError, UsageError
from paysplit.locking import process_running

__all__ = ["OutputFolder", "compact_json", "error_line", "sweep_stale"]

compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""A value as compact JSON text, non-ASCII kept: how the batch's own lines are written."""


# --- the errors file ----------------------------------------------------------------
def error_line(
    file: InputFile,
    line: int,
    account: str | None,
    kind: str,
    reason: str,
    **more: Any,
) -> bytes:
    """One line of ``errors.jsonl``: where (file, line, account), what (``kind``: invalid,
    failed or blocked) and why, with ``more`` fields after them."""
    record: dict[str, Any] = {
        "file": file.name,
        "line": line,
        "account": account,
        "kind": kind,
        "reason": reason,
    }
    record.update(more)
    return (compact_json(record) + "\n").encode("utf-8")


# --- the output folder ---------------------------------------------------------------
def append_file(source: IO[bytes], sink: IO[bytes], size: int) -> None:
    """Copy the rest of ``source`` (``size`` bytes: the caller checked the file's size)
    to ``sink``, each from its file offset on.

    In the kernel where it can (``os.copy_file_range``, Linux): the bytes go from page
    cache to page cache without passing through this process. With two workers, the
    driver appending their part files used a sixth of a CPU the workers needed; this
    takes a third to a half of that off (docs/performance.md, round 6). Where the two
    files do not allow it (another file system, an old kernel, not Linux), and for
    whatever it left, the bytes are read and written.
    """
    left = size
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is not None:
        try:
            while left > 0:
                done = copy_range(source.fileno(), sink.fileno(), left)
                if done == 0:
                    break
                left -= done
        except OSError:
            pass  # the offsets stand where the kernel stopped: read and write the rest
    while left > 0:
        block = source.read(min(left, 1 << 20))
        if not block:
            # The part was checked to hold ``size`` bytes: someone cut it since.
            raise BatchError(
                f"{source.name}: the part file lost {left} of its {size} bytes while it "
                "was being appended; nothing was written"
            )
        write_all(sink, memoryview(block))
        left -= len(block)


class OutputFolder:
    """The run's files: temporaries while it runs, renamed into place only at the end."""

    def __init__(self, out_dir: Path, inputs: Sequence[InputFile], chunks: Sequence[Chunk]):
        self.out_dir = out_dir
        self.token = f"{os.getpid()}.{secrets.token_hex(4)}"
        self.inputs = inputs
        self.chunks = chunks
        self.plans_tmp = [self._temporary(f.plans_name) for f in inputs]
        self.errors_tmp = self._temporary(ERRORS_FILE)
        self.summary_tmp = self._temporary(SUMMARY_FILE)
        self.staging: Path | None = None
        self.file_counts = [Counts() for _ in inputs]
        self.total = Counts()
        self._pending: dict[int, ChunkResult] = {}
        self._next = 0
        self._errors: IO[bytes] | None = None

    def _temporary(self, name: str) -> Path:
        return self.out_dir / f".{name}.{self.token}.tmp"

    def open(self) -> None:
        for path in self.plans_tmp:
            path.write_bytes(b"")
        self._errors = open(self.errors_tmp, "wb")  # noqa: SIM115 - closed in commit/discard

    @property
    def errors(self) -> IO[bytes]:
        assert self._errors is not None
        return self._errors

    def make_staging(self) -> str:
        self.staging = self.out_dir / f".paysplit-staging.{self.token}"
        self.staging.mkdir()
        return str(self.staging)

    def header_error(self, file: InputFile, error: LedgerError) -> None:
        problems = error.problems
        reason = "; ".join(f"header {p.path}: {p.message}".replace(" :", ":") for p in problems)
        self.errors.write(
            error_line(
                file,
                1,
                None,
                "invalid",
                reason or str(error),
                problems=[p.to_json() for p in problems],
            )
        )
        self.file_counts[file.index].errors += 1
        self.total.errors += 1

    def counted(self, chunk: Chunk, counts: Counts) -> None:
        self.file_counts[chunk.file.index].add(counts)
        self.total.add(counts)

    def written(self, chunk: Chunk, counts: Counts) -> None:
        """A chunk this process wrote straight into the temporaries, in order."""
        assert chunk.index == self._next
        self.counted(chunk, counts)
        self._next += 1

    def accept(
        self,
        result: ChunkResult,
        frontier: Frontier | None = None,
        abandon: Callable[[], bool] | None = None,
    ) -> None:
        """A chunk finished in a worker: append it, and every chunk after it now in order.

        With a ``frontier`` (the local pool), a chunk without a plans part was written
        into its plans file by its worker, and a plans part is appended under the
        frontier's lock (:mod:`paysplit.batch_frontier`); ``abandon`` says when to stop
        waiting for that lock (:meth:`Frontier.append_next`)."""
        self._pending[result.index] = result
        while self._next in self._pending:
            ready = self._pending.pop(self._next)
            chunk = self.chunks[ready.index]
            target = self.plans_tmp[chunk.file.index]
            if frontier is None:
                self._append(ready.plans_part, ready.plans_bytes, target)
            elif ready.plans_part is not None:
                append = functools.partial(
                    self._append, ready.plans_part, ready.plans_bytes, target
                )
                frontier.append_next(ready.index, append, abandon)
            elif frontier.next_index <= ready.index:
                raise RuntimeError(f"chunk {ready.index} has no plans part and was not written")
            self._append_errors(ready.errors_part, ready.errors_bytes)
            self.counted(chunk, ready.counts)
            self._next += 1

    def _append(self, part: str | None, size: int, target: Path) -> None:
        if part is None:
            return
        self._check_part(part, size)
        # Unbuffered, and not opened for appending (copy_file_range refuses O_APPEND):
        # the file offsets are the only positions, whichever way the bytes go.
        with open(part, "rb", buffering=0) as source, open(target, "r+b", buffering=0) as sink:
            sink.seek(0, os.SEEK_END)
            append_file(source, sink, size)
        os.unlink(part)

    def _append_errors(self, part: str | None, size: int) -> None:
        if part is None:
            return
        self._check_part(part, size)
        with open(part, "rb") as source:
            shutil.copyfileobj(source, self.errors, 1 << 20)
        os.unlink(part)

    @staticmethod
    def _check_part(part: str, size: int) -> None:
        try:
            seen = os.path.getsize(part)
        except OSError:
            seen = -1
        if seen != size:
            raise UsageError(
                f"a worker wrote {size} bytes to {part}, and this machine sees "
                f"{'no file' if seen < 0 else f'{seen} bytes'}: with a Dask cluster, "
                "--out must be on storage every worker and this machine share"
            )

    def commit(self, summary: Summary) -> None:
        """Rename every file into place: plans files, then errors.jsonl, then summary.json."""
        if self._next != len(self.chunks):
            raise RuntimeError(f"only {self._next} of {len(self.chunks)} chunks were written")
        self.errors.flush()
        os.fsync(self.errors.fileno())
        self.errors.close()
        text = json.dumps(summary.to_json(), indent=2, ensure_ascii=False) + "\n"
        self.summary_tmp.write_text(text, encoding="utf-8")
        for temporary, file in zip(self.plans_tmp, self.inputs, strict=True):
            _fsync(temporary)
            os.replace(temporary, self.out_dir / file.plans_name)
        os.replace(self.errors_tmp, self.out_dir / ERRORS_FILE)
        _fsync(self.summary_tmp)
        os.replace(self.summary_tmp, self.out_dir / SUMMARY_FILE)
        sync_folder(self.out_dir)
        self.discard()

    def discard(self) -> None:
        """Remove what is left of the run's temporaries (all of them, after a failure)."""
        if self._errors is not None and not self._errors.closed:
            self._errors.close()
        for path in (*self.plans_tmp, self.errors_tmp, self.summary_tmp):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)


_STALE_FILE = re.compile(
    r"\.(?:.+\.plans\.jsonl|errors\.jsonl|summary\.json)\.([0-9]+)\.[0-9a-f]{8}\.tmp"
)
"""A run's temporary files (:meth:`OutputFolder._temporary`), group 1 its process id."""
_STALE_STAGING = re.compile(r"\.paysplit-staging\.([0-9]+)\.[0-9a-f]{8}")


def sweep_stale(out_dir: Path) -> list[Path]:
    """Remove what a run killed outright (SIGKILL, a power cut) left in ``out_dir``: its
    temporary files and its staging folder, named with its process id, when that process
    no longer runs. Called with the folder's lock held, so no live run of ours owns them."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(out_dir))
    except OSError:
        return removed
    for entry in entries:
        file = _STALE_FILE.fullmatch(entry.name)
        staging = _STALE_STAGING.fullmatch(entry.name)
        found = file or staging
        if found is None or process_running(int(found.group(1))):
            continue
        path = Path(entry.path)
        with contextlib.suppress(OSError):
            if staging is not None and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            elif file is not None and entry.is_file(follow_symlinks=False):
                path.unlink()
            else:
                continue
            removed.append(path)
    return removed


def _fsync(path: Path) -> None:
    with open(path, "rb+") as stream:
        os.fsync(stream.fileno())
