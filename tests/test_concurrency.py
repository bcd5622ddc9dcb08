"""No lost updates, no partial writes: paysplit writers racing and being killed.

* **Races.** Rounds of 2-4 ``paysplit post-payment --in-place`` writers start at
  the same instant on one ledger (forked from a driver that has already
  imported paysplit, released together through a pipe; and, in a few rounds,
  separate ``paysplit`` console-script processes). Each writer is slowed
  between reading and writing, so without the lock they would all read the
  same version. Afterwards every posted payment is in the ledger exactly
  once, with its history entry. The same race with the lock switched off
  loses updates, which shows that the race test can fail.
* **Kills.** A writer is SIGKILLed while the temporary file is half written,
  after it is written but before the rename, and, on a large ledger, at
  random moments of a real ``paysplit`` run. The ledger always loads and is
  byte for byte either the old or the new version; the next writer removes
  the dead writer's temporary file and its lock goes with the process.

``PAYSPLIT_RACE_ROUNDS`` / ``PAYSPLIT_KILL_ROUNDS`` scale the rounds up (``make soak``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paysplit import locking
from paysplit.cli import main
from paysplit.errors import LedgerError
from paysplit.invariants import check_invariants
from paysplit.ledger_io import dump_ledger, load_ledger, parse_ledger_text

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules" / "apply_automatically.rules"
EXAMPLE = ROOT / "examples" / "ledgers" / "apply_automatically.json"
PYTHON = sys.executable
PAYSPLIT = str(Path(sys.executable).with_name("paysplit"))
NOW = "2025-03-01T09:00:00"
RACE_ROUNDS = int(os.environ.get("PAYSPLIT_RACE_ROUNDS", "20"))
KILL_ROUNDS = int(os.environ.get("PAYSPLIT_KILL_ROUNDS", "6"))

DRIVER = textwrap.dedent(
    """
    import json, os, sys, time
    config = json.loads(open(sys.argv[1]).read())
    from paysplit import ledger_io, locking
    from paysplit.cli import main
    import paysplit.compiler, paysplit.plugin_manager  # imported once, before forking

    write = ledger_io.write_ledger
    def slow_write(ledger, path):
        time.sleep(config["delay"])  # between reading the ledger and replacing it
        write(ledger, path)
    ledger_io.write_ledger = slow_write
    if config["unlocked"]:
        locking.fcntl = None
        locking.check_unchanged = lambda path: None
    # Warm every cache (plugins imported, grammar built) with a run that writes nothing.
    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        main(config["warm"])
        sys.stdout = stdout

    codes = []
    for number, writers in enumerate(config["rounds"]):
        gate_read, gate_write = os.pipe()
        children = []
        for index, argv in enumerate(writers):
            pid = os.fork()
            if pid == 0:
                code = 70
                try:
                    os.close(gate_write)
                    os.read(gate_read, 1)  # every writer starts at the same instant
                    out = os.open(os.devnull, os.O_WRONLY)
                    err = os.open(f"{config['logs']}/{number}-{index}.err",
                                  os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                    os.dup2(out, 1)
                    os.dup2(err, 2)
                    code = main(argv)
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            children.append(pid)
        os.close(gate_read)
        os.write(gate_write, b"x" * len(children))
        os.close(gate_write)
        codes.append([os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children])
    print(json.dumps(codes))
    """
)


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "book.json"
    shutil.copyfile(EXAMPLE, path)
    return path


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PAYSPLIT_NOW": NOW, "PAYSPLIT_LOCK_TIMEOUT": "60", **extra})
    env.pop("PAYSPLIT_DEBUG", None)
    return env


def _payment(payment_id: str) -> str:
    return json.dumps({"id": payment_id, "patient": "L1", "payer": "patient", "amount": "1.00"})


def _post(ledger: Path, payment_id: str) -> list[str]:
    """A writer: post a payment and run the settings' default rule, in place."""
    return [
        "post-payment",
        "--ledger",
        str(ledger),
        "--rules",
        str(RULES),
        "--payment",
        _payment(payment_id),
        "--in-place",
    ]


def _drive(
    tmp_path: Path, rounds: list[list[list[str]]], *, delay: float, unlocked: bool = False
) -> list[list[int]]:
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    warm = rounds[0][0][:-1]  # the first writer's command without --in-place: a dry run
    config = {
        "rounds": rounds,
        "delay": delay,
        "unlocked": unlocked,
        "logs": str(logs),
        "warm": warm,
    }
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    # In a file, not on the command line: 200 rounds of commands exceed an argument's limit.
    config_file = tmp_path / "driver.json"
    config_file.write_text(json.dumps(config))
    done = subprocess.run(
        [PYTHON, str(script), str(config_file)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    codes: list[list[int]] = json.loads(done.stdout.strip().splitlines()[-1])
    return codes


def _logs(tmp_path: Path) -> Iterator[tuple[str, str]]:
    for path in sorted((tmp_path / "logs").glob("*.err")):
        yield path.name, path.read_text()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".lock")))


def _posted(ledger: Path) -> list[str]:
    book = load_ledger(ledger)
    return [p.id for a in book.accounts for p in a.payments if p.id.startswith("R")]


def _writers(round_number: int) -> int:
    return 2 + round_number % 3


# --------------------------------------------------------------------------
# Races
# --------------------------------------------------------------------------
def _report(name: str, line: str, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\n{line}")
    folder = Path(os.environ.get("PAYSPLIT_RELIABILITY_OUT", "build/reliability"))
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"{name}.txt").open("a") as out:
            out.write(line + "\n")


def test_concurrent_writers_never_lose_an_update(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rounds = [[_post(ledger, f"R{r}W{w}") for w in range(_writers(r))] for r in range(RACE_ROUNDS)]
    started = time.perf_counter()
    codes = _drive(tmp_path, rounds, delay=0.02)
    elapsed = time.perf_counter() - started
    writers = sum(len(r) for r in rounds)
    assert codes == [[0] * len(r) for r in rounds]
    for name, text in _logs(tmp_path):
        assert "Traceback" not in text and "error" not in text, (name, text)
    expected = [f"R{r}W{w}" for r in range(RACE_ROUNDS) for w in range(_writers(r))]
    posted = _posted(ledger)
    assert sorted(posted) == sorted(expected), "every payment posted is in the ledger, once"
    book = load_ledger(ledger)
    entries = [h for h in book.history if h.operation == "post-payment"]
    assert sorted(p for h in entries for p in h.payments) == sorted(expected)
    assert check_invariants(book) == []
    assert _leftovers(ledger.parent) == []
    _report(
        "race",
        f"race: {RACE_ROUNDS} rounds of 2-4 writers, {writers} writers, {len(posted)} payments "
        f"posted, 0 lost, {elapsed:.1f} s",
        capsys,
    )


def test_the_same_race_without_the_lock_loses_updates(ledger: Path, tmp_path: Path) -> None:
    """The control: with flock and the fingerprint check switched off, writers that all
    exit 0 overwrite each other. This is what the race test would catch."""
    rounds = [[_post(ledger, f"R{r}W{w}") for w in range(3)] for r in range(3)]
    codes = _drive(tmp_path, rounds, delay=0.3, unlocked=True)
    assert codes == [[0, 0, 0]] * 3
    assert len(_posted(ledger)) < 9


def test_separate_paysplit_processes_serialise_on_the_lock(ledger: Path) -> None:
    """Real console-script processes, not forks of one driver."""
    expected: list[str] = []
    for r in range(2):
        ids = [f"R{r}P{w}" for w in range(3)]
        expected += ids
        running = [
            subprocess.Popen(
                [PAYSPLIT, *_post(ledger, payment_id)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=_env(),
            )
            for payment_id in ids
        ]
        for process in running:
            _, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            assert "Traceback" not in err
    assert sorted(_posted(ledger)) == sorted(expected)
    assert _leftovers(ledger.parent) == []


def test_a_writer_that_cannot_get_the_lock_names_the_holder_and_writes_nothing(
    ledger: Path, tmp_path: Path
) -> None:
    holder = subprocess.Popen(
        [
            PYTHON,
            "-c",
            "import sys, time\n"
            "from paysplit.locking import ledger_lock\n"
            "with ledger_lock(sys.argv[1], argv=['paysplit', 'void', '--payment', 'PAY1']):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(60)\n",
            str(ledger),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        before = ledger.read_bytes()
        done = subprocess.run(
            [PAYSPLIT, *_post(ledger, "RX")],
            capture_output=True,
            text=True,
            env=_env(PAYSPLIT_LOCK_TIMEOUT="0.5"),
            timeout=60,
            check=False,
        )
        assert done.returncode == 2
        assert done.stderr.startswith(f"error: {ledger} is being changed by process {holder.pid}")
        assert "running `paysplit void --payment PAY1`" in done.stderr
        assert "wrote nothing" in done.stderr and "Traceback" not in done.stderr
        assert ledger.read_bytes() == before
    finally:
        holder.kill()
        holder.wait()
    # The kernel dropped the dead holder's lock: the next writer goes ahead at once.
    done = subprocess.run(
        [PAYSPLIT, *_post(ledger, "RY")],
        capture_output=True,
        text=True,
        env=_env(PAYSPLIT_LOCK_TIMEOUT="5"),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert _posted(ledger) == ["RY"]
    assert _leftovers(ledger.parent) == []


def test_a_ledger_changed_by_a_program_that_ignores_the_lock_is_not_overwritten(
    ledger: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fingerprint check: an editor saved the ledger while paysplit was planning."""
    from paysplit import operations

    real = operations.post_payment

    def post_payment(*args: Any, **kwargs: Any) -> Any:
        plan = real(*args, **kwargs)
        ledger.write_bytes(ledger.read_bytes().replace(b"Valley Medical", b"Valley Medics"))
        return plan

    monkeypatch.setattr(operations, "post_payment", post_payment)
    monkeypatch.setenv("PAYSPLIT_NOW", NOW)
    edited = EXAMPLE.read_bytes().replace(b"Valley Medical", b"Valley Medics")
    assert main(_post(ledger, "RZ")) == 2
    err = capsys.readouterr().err
    assert "was changed by another program while paysplit was working on it" in err
    assert "nothing was written" in err
    assert ledger.read_bytes() == edited, "the editor's version stays"
    assert _leftovers(ledger.parent) == []


def test_the_lock_is_taken_only_for_a_verb_that_writes(
    ledger: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    taken: list[str] = []
    real = locking.ledger_lock

    def spy(path: Any, **kwargs: Any) -> Any:
        taken.append(str(path))
        return real(path, **kwargs)

    monkeypatch.setattr(locking, "ledger_lock", spy)
    monkeypatch.setenv("PAYSPLIT_NOW", NOW)
    out = ledger.with_name("out.json")
    assert main([*_post(ledger, "RA")[:-1], "--preview"]) == 0
    assert main(_post(ledger, "RB")[:-1]) == 0
    assert taken == []
    assert main([*_post(ledger, "RC")[:-1], "--out", str(out)]) == 0
    assert main(_post(ledger, "RD")) == 0
    assert main(["void", "--ledger", str(ledger), "--payment", "RD", "--in-place"]) == 0
    assert taken == [str(out), str(ledger), str(ledger)]
    capsys.readouterr()
    assert _posted(out) == ["RC"] and _posted(ledger) == ["RD"]
    assert _leftovers(ledger.parent) == []


def test_in_place_through_a_symbolic_link_updates_the_real_ledger(
    ledger: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYSPLIT_NOW", NOW)
    link = ledger.with_name("link.json")
    link.symlink_to(ledger.name)
    assert main(_post(link, "RL")) == 0
    capsys.readouterr()
    assert link.is_symlink(), "the link is still a link"
    assert _posted(ledger) == ["RL"]
    assert _leftovers(ledger.parent) == []


def test_lock_timeout_setting_is_checked() -> None:
    assert locking.lock_timeout({}) == locking.DEFAULT_TIMEOUT
    assert locking.lock_timeout({"PAYSPLIT_LOCK_TIMEOUT": "2.5"}) == 2.5
    for bad in ("soon", "-1", "nan", "1e9"):
        with pytest.raises(Exception, match="PAYSPLIT_LOCK_TIMEOUT"):
            locking.lock_timeout({"PAYSPLIT_LOCK_TIMEOUT": bad})


# --------------------------------------------------------------------------
# Kills
# --------------------------------------------------------------------------
KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    marker, where = sys.argv[1], sys.argv[2]
    from paysplit.cli import main

    def stop():
        open(marker, "w").close()
        time.sleep(120)  # SIGKILLed here

    if where == "half":  # half of the new ledger is in the temporary file
        fdopen = os.fdopen
        class Half:
            def __init__(self, stream):
                self.stream = stream
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                return self.stream.__exit__(*exc)
            def write(self, text):
                self.stream.write(text[: len(text) // 2])
                self.stream.flush()
                stop()
            def __getattr__(self, name):
                return getattr(self.stream, name)
        os.fdopen = lambda *a, **k: Half(fdopen(*a, **k))
    else:  # all of it is in the temporary file, not yet renamed over the ledger
        fsync = os.fsync
        def synced(fd):
            fsync(fd)
            stop()
        os.fsync = synced
    sys.exit(main(sys.argv[3:]))
    """
)


def _wait_for(path: Path, process: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, "the writer ended before it was killed"
        assert time.monotonic() < deadline, "the writer never reached the write"
        time.sleep(0.01)


@pytest.mark.parametrize("where", ["half", "before-rename"])
def test_a_writer_killed_mid_write_leaves_the_old_ledger_whole(
    ledger: Path, tmp_path: Path, where: str
) -> None:
    before = ledger.read_bytes()
    script = tmp_path / "killed.py"
    script.write_text(KILLED_WRITER)
    marker = tmp_path / "writing"
    process = subprocess.Popen(
        [PYTHON, str(script), str(marker), where, *_post(ledger, "RK")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    _wait_for(marker, process)
    temporaries = [p for p in ledger.parent.iterdir() if p.name.endswith(".tmp")]
    assert len(temporaries) == 1 and temporaries[0].name.startswith(".book.json.")
    partial = temporaries[0].read_bytes()
    process.send_signal(signal.SIGKILL)
    process.wait()
    if where == "half":
        with pytest.raises(LedgerError):
            parse_ledger_text(partial, "temporary")  # truly half a ledger
    assert ledger.read_bytes() == before, "the ledger is the old version, whole"
    load_ledger(ledger)
    assert _leftovers(ledger.parent) == [temporaries[0].name, "book.json.lock"]
    # The next writer: the dead writer's lock is gone with it, its temporary file is removed.
    done = subprocess.run(
        [PAYSPLIT, *_post(ledger, "RN")],
        capture_output=True,
        text=True,
        env=_env(PAYSPLIT_LOCK_TIMEOUT="5"),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "note: removed " in done.stderr and temporaries[0].name in done.stderr
    assert "left half-written by a writer that was killed" in done.stderr
    assert _posted(ledger) == ["RN"]
    assert _leftovers(ledger.parent) == []


def _big_ledger(path: Path, accounts: int) -> None:
    """A valid ledger of ``accounts`` accounts (about 4 KB each)."""
    book = json.loads(EXAMPLE.read_text())
    template = book["accounts"][0]
    text = json.dumps(template)
    ids = {
        p["id"]
        for key in (
            "patients",
            "charges",
            "payments",
            "plans",
            "splits",
            "adjustments",
            "appointments",
        )
        for p in template.get(key, [])
    }
    ids |= {i["id"] for plan in template.get("plans", []) for i in plan["installments"]}
    copies = []
    for n in range(accounts):
        copy = text
        for old in sorted(ids, key=len, reverse=True):
            copy = copy.replace(f'"{old}"', f'"{old}_{n}"')
        account = json.loads(copy)
        account["id"] = f"ACC{n}"
        copies.append(account)
    book["accounts"] = copies
    path.write_text(json.dumps(book, indent=1))


def _temporary_appears(folder: Path, process: subprocess.Popen[bytes]) -> bool:
    """Wait until the writer has opened its temporary file (False: it ended first)."""
    while process.poll() is None:
        if any(name.endswith(".tmp") for name in os.listdir(folder)):
            return True
        time.sleep(0.0005)
    return False


def test_a_real_writer_killed_at_random_moments_leaves_one_whole_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Half the kills land anywhere in a real run, half while the new ledger is written."""
    ledger = tmp_path / "big.json"
    _big_ledger(ledger, 400)
    load_ledger(ledger)
    old = ledger.read_bytes()
    command = ["void", "--ledger", str(ledger), "--payment", "PAY1_0", "--in-place"]
    expected = tmp_path / "expected" / "big.json"
    expected.parent.mkdir()
    shutil.copyfile(ledger, expected)
    started = time.monotonic()
    subprocess.run(
        [PAYSPLIT, *command[:2], str(expected), *command[3:]],
        capture_output=True,
        env=_env(),
        check=True,
    )
    full_run = time.monotonic() - started
    new = expected.read_bytes()
    assert new != old
    rng = random.Random(int(os.environ.get("PAYSPLIT_KILL_SEED", "7")))
    seen = {"old": 0, "new": 0, "temporary file left": 0, "killed while writing": 0}
    for round_number in range(KILL_ROUNDS):
        ledger.write_bytes(old)
        process = subprocess.Popen(
            [PAYSPLIT, *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env()
        )
        if round_number % 2 == 0:
            time.sleep(rng.uniform(0.2, 1.1) * full_run)
        elif _temporary_appears(tmp_path, process):
            seen["killed while writing"] += 1
            time.sleep(rng.uniform(0, 0.005))
        process.send_signal(signal.SIGKILL)
        process.wait()
        now = ledger.read_bytes()
        assert now in (old, new), "the ledger is one whole version"
        seen["old" if now == old else "new"] += 1
        load_ledger(ledger)
        seen["temporary file left"] += sum(1 for p in tmp_path.iterdir() if p.suffix == ".tmp")
        # The next run sees a whole ledger and cleans up after the dead writer.
        again = subprocess.run(
            [PAYSPLIT, "void", "--ledger", str(ledger), "--payment", "INS1_0", "--in-place"],
            capture_output=True,
            text=True,
            env=_env(PAYSPLIT_LOCK_TIMEOUT="5"),
            check=False,
        )
        assert again.returncode == 0, again.stderr
        assert _leftovers(tmp_path) == []
        assert "Traceback" not in again.stderr
    _report(
        "kill",
        f"kill: {KILL_ROUNDS} SIGKILLs of a real run writing {len(old) / 1e6:.1f} MB "
        f"({full_run:.2f} s a run): {seen}",
        capsys,
    )


def test_the_written_ledger_is_flushed_and_its_folder_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync of the temporary file before the rename, and of the folder after it."""
    from paysplit import ledger_io

    book = load_ledger(EXAMPLE)
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
        real(fd)

    renamed: list[str] = []
    replace = os.replace

    def spy(src: Any, dst: Any) -> None:
        renamed.append(f"after {len(synced)} fsync")
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", spy)
    target = tmp_path / "out.json"
    ledger_io.write_ledger(book, target)
    assert synced == ["file", "dir"] and renamed == ["after 1 fsync"]
    assert target.read_text() == dump_ledger(book)
