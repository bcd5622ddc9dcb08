"""Benchmarks for batch allocation (``make bench``; not part of ``make test``).

``generate`` writes deterministic synthetic JSON Lines ledgers, ``handwritten``
is the plain Python allocation loop paysplit is measured against, and ``run``
measures both side by side (``python -m benchmarks.run``).
"""
