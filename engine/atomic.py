"""Replacing a file atomically: whatever fails, the old file stays whole.

Every file paysplit rewrites (a ledger, a rule file ``paysplit fmt`` reformats)
goes through :func:`write_atomically`:

* the new text goes to a temporary file ``.NAME.<pid>.<hex>.tmp`` in the same
  folder (created with ``O_EXCL``: never someone else's file, never through a
  link), is flushed and fsynced;
* it gets the old file's mode, and is renamed over the file;
* the folder is fsynced, so the rename itself survives a power cut.

Writing to a symbolic link replaces the file it names, not the link. If
anything fails (the disk is full, the folder is gone, the text holds a lone
surrogate that UTF-8 cannot carry) the temporary file is removed, the old file
is untouched, and one :class:`~paysplit.errors.WriteError` says so. A writer
killed mid-write leaves only its temporary file, which the next writer of a
ledger removes (:func:`paysplit.locking.sweep_temporaries`, by
:func:`temporary_pattern`).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

from paysplit.errors import WriteError

__all__ = ["temporary_pattern", "write_atomically"]


def temporary_pattern(name: str) -> re.Pattern[str]:
    """The names of the temporary files written for the file ``name``; group 1 is the pid."""
    return re.compile(rf"\.{re.escape(name)}\.([0-9]+)\.[0-9a-f]{{8}}\.tmp")


def write_atomically(
    path: str | Path, chunks: Iterable[str], *, error: type[WriteError] = WriteError
) -> None:
    """Replace ``path`` by the text of ``chunks`` (UTF-8, newlines as given), atomically.

    ``chunks`` is consumed only once the temporary file is open, so a generator may stream
    a large file. Raises ``error`` (a :class:`~paysplit.errors.WriteError`) with the reason
    when the file cannot be written; the old file is then unchanged.
    """
    path = Path(path)
    # Through a symbolic link to the file it names, as open(path, "w") would: renaming over
    # the link itself would leave the real file stale and the link turned into a copy.
    real = Path(os.path.realpath(path)) if path.is_symlink() else path
    folder = real.parent if str(real.parent) else Path(".")
    temporary = folder / f".{real.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        # O_EXCL: never follow or reuse someone else's file; 0o666 minus the umask, as open().
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as problem:
        raise error(f"cannot write {path}: {problem.strerror}") from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as stream:
            for chunk in chunks:
                stream.write(chunk)
            stream.flush()
            os.fsync(stream.fileno())
        with contextlib.suppress(FileNotFoundError):  # keep the old file's mode
            os.chmod(temporary, os.stat(real).st_mode & 0o7777)
        os.replace(temporary, real)
    except BaseException as problem:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(problem, OSError):
            raise error(
                f"cannot write {path}: {problem.strerror or problem}; the old file is unchanged"
            ) from None
        if isinstance(problem, UnicodeEncodeError):
            raise error(
                f"cannot write {path}: some text holds {problem.object[problem.start]!a}, half "
                "of a UTF-16 surrogate pair, which is not a character; the old file is unchanged"
            ) from None
        raise
    sync_folder(folder)


def sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every platform opens a folder)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
