"""paysplit: a rules engine for how a medical or dental practice's money is allocated.

The package is the library every face (the ``paysplit`` command, the pytest
plugin, batch runners) is built on. Plugins import :data:`hookimpl` from here.
"""

from __future__ import annotations

from paysplit.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
