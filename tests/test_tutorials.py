"""The tutorials in docs/ run as written.

A tutorial's fenced blocks are executed in order in an empty folder:

* a block whose info string has ``file=PATH`` is written to PATH;
* a ``sh`` block is run with bash (its expected exit status is ``exit=N``,
  default 0);
* an ``output`` block lists lines the previous ``sh`` block must print
  (each line is looked for, stripped, in what was printed; ``...`` lines
  stand for anything).

The commands run in a throw-away virtual environment layered over the
development one (:class:`scenario_support.TempVenv`), with ``paysplit``,
``pytest`` and ``pip`` on the PATH, so that ``pip install`` in a tutorial
installs into that environment and nothing is downloaded.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from scenario_support import CLI, ROOT, TempVenv, env_with

DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass
class Block:
    info: str
    body: str
    line: int
    options: dict[str, str] = field(default_factory=dict)

    @property
    def language(self) -> str:
        return self.info.split()[0] if self.info.split() else ""


def blocks(markdown: Path) -> list[Block]:
    text = markdown.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        info = match.group("info").strip()
        words = info.split()
        options = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(info, match.group("body"), line, options))
    return found


def tools(venv: TempVenv, folder: Path) -> Path:
    """``paysplit``, ``pytest`` and ``pip`` commands that use the temporary environment."""
    folder.mkdir()
    python = shlex.quote(str(venv.python))
    scripts = {
        "paysplit": f'exec {python} -c {shlex.quote(CLI)} "$@"',
        "pytest": f"exec {python} -m pytest {' '.join(venv.pytest_args())} "
        '-p no:cacheprovider "$@"',
        "pip": (
            'if [ "$1" = install ]; then shift; set -- install --quiet --no-deps '
            '--no-build-isolation --disable-pip-version-check "$@"; fi\n'
            f'exec {shlex.quote(sys.executable)} -m pip --python {python} "$@"'
        ),
    }
    for name, body in scripts.items():
        path = folder / name
        path.write_text(f"#!/usr/bin/env bash\n{body}\n", encoding="utf-8")
        path.chmod(0o755)
    return folder


def run_tutorial(markdown: Path, work: Path) -> int:
    """Run every block; returns how many commands ran."""
    venv = TempVenv(work / ".venv")
    bin_dir = tools(venv, work / ".bin")
    home = work / "tutorial"
    home.mkdir()
    env = env_with({"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"})
    env.pop("PYTHONPATH", None)
    ran = 0
    last: subprocess.CompletedProcess[str] | None = None
    where = markdown.relative_to(ROOT)
    for block in blocks(markdown):
        if "file" in block.options:
            target = home / block.options["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.body, encoding="utf-8")
        elif block.language == "sh":
            last = subprocess.run(
                ["bash", "-c", block.body],
                cwd=home,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            ran += 1
            expected = int(block.options.get("exit", "0"))
            assert last.returncode == expected, (
                f"{where}:{block.line}: exit {last.returncode}, expected {expected}\n"
                f"{block.body}\n--- stdout\n{last.stdout}\n--- stderr\n{last.stderr}"
            )
        elif block.language == "output":
            assert last is not None, f"{where}:{block.line}: output block before any command"
            printed = [line.strip() for line in (last.stdout + last.stderr).splitlines()]
            for wanted in block.body.splitlines():
                wanted = wanted.strip()
                if not wanted or "..." in wanted:
                    continue
                assert any(wanted in line for line in printed), (
                    f"{where}:{block.line}: {wanted!r} was not printed; the command printed:\n"
                    + last.stdout
                    + last.stderr
                )
    return ran


@pytest.mark.parametrize("name", ["tutorial-implementers.md", "tutorial-vendors.md"])
def test_the_tutorial_runs_as_written(name: str, tmp_path: Path) -> None:
    assert run_tutorial(DOCS / name, tmp_path) >= 5
