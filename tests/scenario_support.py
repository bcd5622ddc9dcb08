"""Helpers for the scenario, coverage, pytest-plugin and plugin tests.

* :func:`run_cli` runs the ``paysplit`` command in a fresh interpreter, as a user would.
* :class:`TempVenv` is a throw-away virtual environment that sees everything the
  development environment has installed (through a ``.pth`` file) and into which
  a plugin package is installed with pip, from its folder, offline
  (``--no-build-isolation``). The development environment is never changed.
* :func:`fake_distribution` writes an installed distribution (modules, a
  ``.dist-info`` with entry points) into a folder, for plugins that exist only
  in a test (the deliberately broken ones).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
LEDGERS = ROOT / "examples" / "ledgers"
VENDOR_PLUGIN = ROOT / "examples" / "vendor-plugin"

CLI = "import sys; from paysplit.cli import main; sys.exit(main())"


def env_with(
    extra: Mapping[str, str] | None = None, pythonpath: Sequence[Path] = ()
) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PAYSPLIT_PLUGINS", None)
    env.pop("PAYSPLIT_DISABLE_PLUGINS", None)
    env["PAYSPLIT_NOW"] = "2025-03-01T12:00:00"
    env["COLUMNS"] = "200"
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    env.update(extra or {})
    return env


def run_cli(
    *args: str | Path,
    cwd: Path | None = None,
    python: str | Path = sys.executable,
    env: Mapping[str, str] | None = None,
    pythonpath: Sequence[Path] = (),
) -> subprocess.CompletedProcess[str]:
    """``paysplit ARGS...`` in a new interpreter; stdout and stderr captured as text."""
    return subprocess.run(
        [str(python), "-c", CLI, *(str(a) for a in args)],
        cwd=cwd,
        env=env_with(env, pythonpath),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


PLUGIN_REGISTERED = (
    "import sys; from importlib.metadata import entry_points; "
    "sys.exit(0 if any(e.value == 'paysplit.pytest_plugin' "
    "for e in entry_points(group='pytest11')) else 1)"
)
"""Exits 0 when the interpreter running it loads paysplit's pytest plugin by entry point."""


def pytest_plugin_args() -> list[str]:
    """``-p paysplit.pytest_plugin`` unless the ``pytest11`` entry point already loads it
    (naming it twice is an error: pytest refuses a plugin registered under two names)."""
    installed = any(ep.value == "paysplit.pytest_plugin" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "paysplit.pytest_plugin"]


def copy_stock(into: Path) -> Path:
    """A copy of rules/ and examples/ledgers/ under ``into`` (the same relative layout)."""
    shutil.copytree(RULES, into / "rules", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(LEDGERS, into / "examples" / "ledgers")
    return into


class TempVenv:
    """A virtual environment in ``folder`` layered over the development environment."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(folder)],
            check=True,
            capture_output=True,
        )
        self.python = folder / ("Scripts" if os.name == "nt" else "bin") / "python"
        purelib = subprocess.run(
            [str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dev_site = sysconfig.get_paths()["purelib"]
        Path(purelib, "_paysplit_dev.pth").write_text(
            f"import site; site.addsitedir({dev_site!r})\n", encoding="utf-8"
        )

    def pip_install(self, package: Path) -> subprocess.CompletedProcess[str]:
        """``pip install PACKAGE`` into this environment (offline: no build isolation)."""
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(self.python),
                "install",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--disable-pip-version-check",
                str(package),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def run(
        self, *args: str | Path, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), *(str(a) for a in args)],
            cwd=cwd,
            env=env_with(env),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def pytest_args(self) -> list[str]:
        """:func:`pytest_plugin_args`, as this environment's interpreter sees it."""
        found = subprocess.run([str(self.python), "-c", PLUGIN_REGISTERED], check=False)
        return [] if found.returncode == 0 else ["-p", "paysplit.pytest_plugin"]

    def paysplit(
        self, *args: str | Path, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, cwd=cwd, python=self.python)


def fake_distribution(
    site: Path,
    name: str,
    version: str,
    modules: Mapping[str, str],
    plugins: Mapping[str, str],
) -> Path:
    """Write modules and an installed distribution whose ``paysplit`` entry points are
    ``plugins`` (entry-point name -> ``module`` or ``module:attribute``)."""
    site.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = ["[paysplit]", *(f"{ep} = {target}" for ep, target in plugins.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return site
