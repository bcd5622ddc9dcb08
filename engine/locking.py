"""One writer at a time: the lock a verb holds on a ledger across read, plan and write.

Writing a ledger is atomic (:func:`paysplit.ledger_io.write_ledger`: a temporary
file, fsync, rename, fsync of the folder), so a reader always sees a whole file.
Atomic writes alone still lose updates: two ``paysplit post-payment --in-place``
runs that both read version 1 each write their own version 2, and the payment
of the first is gone. So every verb that writes holds this lock from before it
reads the ledger until after it has written it:

* **the lock** is ``fcntl.flock`` on a sidecar file ``LEDGER.lock`` next to the
  ledger (the real file, when the ledger path is a symbolic link). The kernel
  releases it when the holder exits, however it exits, so a killed process never
  leaves a stale lock. A second writer waits up to ``PAYSPLIT_LOCK_TIMEOUT``
  seconds (default :data:`DEFAULT_TIMEOUT`), then gives up with a message that
  names the holder (process id, host, command, since when) and writes nothing.
  The holder removes the sidecar when it is done (it is recreated by the next
  writer; a waiter that locked a removed sidecar notices and tries again);
* **a fingerprint check** (sha256 of the ledger's bytes) catches a program that
  does not take the lock (a text editor, a practice system's export): the
  fingerprint taken when the lock was acquired must still be the file's just
  before the new version replaces it, or nothing is written
  (:class:`LedgerChanged`);
* **stale temporary files** (``.LEDGER.<pid>.<hex>.tmp``) of a writer that was
  killed mid-write are removed by the next writer, under the lock, when their
  process no longer runs. They were never the ledger: a killed writer leaves the
  old file whole.

``paysplit batch`` holds the same kind of lock on its output folder for the whole run
(:func:`folder_lock`: ``OUT/.paysplit.lock``), so that two runs into one folder (a
nightly job and a run by hand) never mix their files; the second waits, then gives up
with the same message.

The lock serialises paysplit processes on one machine and on file systems whose
``flock`` is shared between machines (local disks; NFS v4 emulates it). Where
``fcntl`` does not exist (Windows) only the fingerprint check runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from paysplit.atomic import temporary_pattern
from paysplit.errors import PaysplitError, UsageError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_TIMEOUT",
    "FOLDER_LOCK",
    "LOCK_SUFFIX",
    "TIMEOUT_ENV",
    "LedgerChanged",
    "LedgerLock",
    "LedgerLocked",
    "check_unchanged",
    "fingerprint",
    "folder_lock",
    "held_lock",
    "ledger_lock",
    "lock_path",
    "lock_timeout",
    "process_running",
    "real_path",
]

TIMEOUT_ENV = "PAYSPLIT_LOCK_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
"""Seconds a writer waits for another to finish: operations take well under a second."""
LOCK_SUFFIX = ".lock"
FOLDER_LOCK = ".paysplit.lock"
"""The lock file inside a folder a batch writes (the folder's parent may not be ours)."""


class LedgerLocked(PaysplitError):
    """Another process kept the ledger locked past the timeout; nothing was written."""


class LedgerChanged(PaysplitError):
    """The ledger changed under a writer that held the lock; nothing was written."""


def real_path(path: str | Path) -> Path:
    """The file a path names, through symbolic links (the file a write replaces)."""
    return Path(os.path.realpath(path))


def lock_path(path: str | Path) -> Path:
    """The sidecar lock file of a ledger: ``LEDGER.lock`` next to the real file."""
    real = real_path(path)
    return real.with_name(real.name + LOCK_SUFFIX)


def lock_timeout(environ: dict[str, str] | None = None) -> float:
    """``PAYSPLIT_LOCK_TIMEOUT`` in seconds (0 means do not wait), else the default."""
    raw = (os.environ if environ is None else environ).get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < 86_400:  # NaN fails this too
        raise UsageError(
            f"{TIMEOUT_ENV}={raw!r} is not a number of seconds (0 to 86399, for example 30)"
        )
    return seconds


def fingerprint(path: str | Path) -> str | None:
    """sha256 of the file's bytes, or None when there is no file."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as stream:
            while chunk := stream.read(1024 * 1024):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return "a folder"
    return digest.hexdigest()


@dataclass
class LedgerLock:
    """A held lock on one ledger path (see :func:`ledger_lock`)."""

    path: Path
    """The ledger as the user named it."""
    real: Path
    """The file it names (writes replace this one)."""
    lock_file: Path
    fingerprint: str | None
    """The ledger's fingerprint when the lock was taken (None: there was no file)."""
    waited: float = 0.0
    """Seconds spent waiting for another writer."""
    removed: list[Path] = field(default_factory=list)
    """Temporary files of killed writers that were cleaned up."""

    def check_unchanged(self) -> None:
        """Raise :class:`LedgerChanged` when the ledger is not the file the lock found."""
        now = fingerprint(self.real)
        if now != self.fingerprint:
            raise LedgerChanged(
                f"{self.path} was changed by another program while paysplit was working on it "
                "(a program that does not take paysplit's lock, such as an editor or an "
                "export); nothing was written: run the command again on the new version"
            )


_held: dict[Path, LedgerLock] = {}
"""Locks this process holds, by real ledger path."""


def held_lock(path: str | Path) -> LedgerLock | None:
    """The lock this process holds on ``path``'s ledger, if any."""
    return _held.get(real_path(path))


def check_unchanged(path: str | Path) -> None:
    """Before writing ``path``: when this process holds its lock, check the fingerprint."""
    lock = held_lock(path)
    if lock is not None:
        lock.check_unchanged()


def _holder(lock_file: Path) -> str:
    """Who holds the lock, as the holder wrote it into the sidecar."""
    try:
        raw = lock_file.read_text(encoding="utf-8", errors="replace")
        info = json.loads(raw)
    except (OSError, ValueError):
        return "another paysplit process"
    if not isinstance(info, dict):
        return "another paysplit process"
    parts = [f"process {info.get('pid', '?')}"]
    if info.get("host"):
        parts[0] += f" on {info['host']}"
    if info.get("command"):
        parts.append(f"running `{info['command']}`")
    if info.get("since"):
        parts.append(f"since {info['since']}")
    return ", ".join(parts)


def _command_line(argv: Sequence[str] | None) -> str:
    words = list(sys.argv if argv is None else argv)
    if words:
        words[0] = Path(words[0]).name
    text = " ".join(words)
    return text if len(text) <= 200 else text[:197] + "..."


def _open_lock_file(lock_file: Path, path: Path) -> int:
    try:
        return os.open(lock_file, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as error:
        raise LedgerLocked(
            f"cannot lock {path}: {error.strerror or error} ({lock_file}); nothing was written"
        ) from None


def _acquire(lock_file: Path, path: Path, timeout: float) -> tuple[int, float]:
    """Lock the sidecar: (its descriptor, seconds waited). Retries when the sidecar it locked
    was removed by the holder that released it."""
    assert fcntl is not None
    started = time.monotonic()
    pause = 0.005
    while True:
        descriptor = _open_lock_file(lock_file, path)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            waited = time.monotonic() - started
            if waited >= timeout:
                raise LedgerLocked(
                    f"{path} is being changed by {_holder(lock_file)}; waited "
                    f"{waited:.0f} s ({TIMEOUT_ENV}={timeout:g}) and wrote nothing. Run the "
                    "command again when it is done (its lock goes when that process ends)"
                ) from None
            time.sleep(min(pause, max(0.0, timeout - waited)))
            pause = min(pause * 1.5, 0.1)
            continue
        except OSError as error:
            os.close(descriptor)
            raise LedgerLocked(
                f"cannot lock {path}: {error.strerror or error}; nothing was written"
            ) from None
        try:
            now = os.stat(lock_file)
        except FileNotFoundError:
            os.close(descriptor)  # released and removed between our open and our lock
            continue
        mine = os.fstat(descriptor)
        if (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
            os.close(descriptor)  # a newer sidecar replaced the one we locked
            continue
        return descriptor, time.monotonic() - started


def _write_holder(descriptor: int, argv: Sequence[str] | None) -> None:
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": _command_line(argv),
        "since": dt.datetime.now().replace(microsecond=0).isoformat(),
    }
    data = json.dumps(info).encode("utf-8", "backslashreplace")
    with contextlib.suppress(OSError):  # who holds it is a courtesy to waiters
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, data, 0)


def process_running(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (this process does)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OverflowError:  # a number no process id can be
        return False
    except OSError:  # PermissionError: it runs, as someone else
        return True
    return True


def sweep_temporaries(real: Path) -> list[Path]:
    """Remove the temporary files a killed writer of ``real`` left (its process is gone)."""
    pattern = temporary_pattern(real.name)
    removed: list[Path] = []
    try:
        names = os.listdir(real.parent)
    except OSError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        if match is None or process_running(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(real.parent / name)
            removed.append(real.parent / name)
    return removed


@contextlib.contextmanager
def ledger_lock(
    path: str | Path,
    *,
    timeout: float | None = None,
    argv: Sequence[str] | None = None,
) -> Iterator[LedgerLock]:
    """Hold the lock on a ledger for a read-modify-write (re-entrant within a process).

    Raises :class:`LedgerLocked` (exit 2, nothing written) when another process holds it
    for longer than ``timeout`` seconds (default: :func:`lock_timeout`).
    """
    real = real_path(path)
    already = _held.get(real)
    if already is not None:
        yield already
        return
    wait = lock_timeout() if timeout is None else timeout
    lock_file = real.with_name(real.name + LOCK_SUFFIX)
    descriptor: int | None = None
    waited = 0.0
    if fcntl is not None:
        descriptor, waited = _acquire(lock_file, Path(path), wait)
        _write_holder(descriptor, argv)
    try:
        lock = LedgerLock(Path(path), real, lock_file, fingerprint(real), waited)
        if descriptor is not None:
            lock.removed = sweep_temporaries(real)
        _held[real] = lock
        try:
            yield lock
        finally:
            _held.pop(real, None)
    finally:
        if descriptor is not None:
            _release(lock_file, descriptor)


@contextlib.contextmanager
def folder_lock(
    folder: str | Path,
    *,
    timeout: float | None = None,
    argv: Sequence[str] | None = None,
) -> Iterator[float]:
    """Hold the lock on an output folder for a whole run (``FOLDER/.paysplit.lock``, which
    must exist as a folder); yields the seconds spent waiting for another run.

    Raises :class:`LedgerLocked` (exit 2, nothing written) when another process holds it
    for longer than ``timeout`` seconds (default: :func:`lock_timeout`), naming it.
    """
    wait = lock_timeout() if timeout is None else timeout
    if fcntl is None:  # pragma: no cover - Windows
        yield 0.0
        return
    lock_file = Path(folder) / FOLDER_LOCK
    descriptor, waited = _acquire(lock_file, Path(folder), wait)
    _write_holder(descriptor, argv)
    try:
        yield waited
    finally:
        _release(lock_file, descriptor)


def _release(lock_file: Path, descriptor: int) -> None:
    # Removed while still locked, so the next writer never locks a file that is gone.
    with contextlib.suppress(OSError):
        os.unlink(lock_file)
    os.close(descriptor)
