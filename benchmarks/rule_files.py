"""How fast a hostile or large rule file gets its answer (`make bench`).

The rule language promises one clear error "in well under a second" for
hostile input (empty, binary, 10,000 nested parentheses, a 10 MB file,
Python code) and a quick parse of a large valid file. Unit tests only guard
against hangs; this measures the real times, best of five, and fails (exit 1)
if any is a second or more.
"""

from __future__ import annotations

import sys
import time

from paysplit import source
from paysplit.parser import parse_file

BODY = "    oldest first where status = due_patient and balance > 5, match provider\n"
CASES: dict[str, bytes] = {
    "empty file": b"",
    "binary (NUL bytes)": bytes(range(256)) * 40,
    "invalid UTF-8": b"rule r: caf\xe9\n" * 100,
    "10,000 nested parentheses": b"rule r: where " + b"(" * 10_000 + b"a = b" + b")" * 10_000,
    "10 MB file": b"rule r: oldest first\n" * 500_000,
    "Python code": b"import os\n\n\ndef main():\n    print(os.getcwd())\n" * 200,
    "700 valid rules (just under the size limit)": "".join(
        f"rule r{i}:\n{BODY}" for i in range(700)
    ).encode(),
}


def answer(data: bytes) -> int:
    """Parse like `paysplit check` does; the number of diagnostics."""
    text, problem = source.decode("bench.rules", data)
    if problem is not None:
        return 1
    return len(parse_file("bench.rules", text or "").errors)


def main() -> int:
    slowest = 0.0
    print(f"{'input':<46} {'bytes':>10} {'errors':>6} {'best of 5':>10}")
    for name, data in CASES.items():
        times = []
        for _ in range(5):
            started = time.perf_counter()
            errors = answer(data)
            times.append(time.perf_counter() - started)
        best = min(times)
        slowest = max(slowest, best)
        print(f"{name:<46} {len(data):>10,} {errors:>6} {best * 1000:>8.1f} ms")
    verdict = "well under a second" if slowest < 0.5 else "SLOWER than promised"
    print(f"slowest: {slowest * 1000:.1f} ms ({verdict})")
    return 0 if slowest < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
