"""Rule files for property tests: well-formed ones, built from the language's pieces.

The file is built by plain Python from a seed that Hypothesis draws, which is
many times faster than drawing every choice through Hypothesis; a failure
still reports the seed that reproduces it.
"""

from __future__ import annotations

import random

from hypothesis import strategies as st

NAMES = ("pay", "due_patient", "r2", "_x", "allocate_unearned", "a")
STATUSES = ("due_patient", "pending_patient", "due_insurance", "collection")
SETTINGS = (
    "negative unallocated warn",
    "overpay charge allow",
    "no cross-doctor",
    "default unearned type prepayment",
    "block on unattached negative adjustments",
)
CLAUSES = (
    "include debits",
    "include dependents",
    "include account",
    "match provider",
    "match office",
    "whole charges only",
    "no cross-doctor",
    "only when payment covers balance",
    "block on unattached negative adjustments",
    "mode due patient",
    "mode payment plans",
    "on demand",
    "on charge added",
    "from unallocated",
    "from unearned type copay",
    "to installments",
    "leftover keep",
    'leftover credit due patient memo "Account \\"credit\\"" provider same',
    "leftover credit due insurance office MAIN",
)
ORDERS = (
    "oldest first",
    "newest first",
    "largest first",
    "smallest first",
    "order by balance desc then date",
    "order by charge.age asc",
)


def comparison(rng: random.Random) -> str:
    choice = rng.randrange(8)
    if choice == 0:
        return f"status {rng.choice(['=', '!='])} {rng.choice(STATUSES)}"
    if choice == 1:
        items = ", ".join(rng.sample(STATUSES, rng.randint(1, 3)))
        return f"status {rng.choice(['in', 'not in'])} ({items})"
    if choice == 2:
        field = rng.choice(["balance", "patient_balance", "amount", "payment.amount"])
        op = rng.choice(["<", "<=", ">", ">=", "=", "!="])
        return f"{field} {op} {rng.choice(['0', '$12.50', '100', '5.99'])}"
    if choice == 3:
        return f"age {rng.choice(['<', '>='])} {rng.randint(0, 400)} days"
    return rng.choice(
        [
            "date >= 2025-01-22",
            "payment.payer = patient",
            "provider = payment.provider",
            'code = "D1110"',
        ]
    )


def expression(rng: random.Random, depth: int = 0) -> str:
    if depth >= 3 or rng.random() < 0.4:
        return comparison(rng)
    shape = rng.randrange(4)
    if shape == 0:
        return f"{expression(rng, depth + 1)} and {expression(rng, depth + 1)}"
    if shape == 1:
        return f"{expression(rng, depth + 1)} or {expression(rng, depth + 1)}"
    if shape == 2:
        return f"not ({expression(rng, depth + 1)})"
    return f"({expression(rng, depth + 1)})"


def clause(rng: random.Random) -> str:
    shape = rng.randrange(4)
    if shape == 0:
        return rng.choice(CLAUSES)
    if shape == 1:
        return rng.choice(ORDERS)
    if shape == 2:
        return f"where {expression(rng)}"
    return f"{rng.choice(ORDERS)} where {expression(rng)}"


def rule_file(seed: int) -> str:
    """A syntactically valid rule file (it may still have semantic mistakes)."""
    rng = random.Random(seed)
    blocks: list[list[str]] = []
    settings = rng.sample(SETTINGS, rng.randint(0, 3))
    if settings:
        blocks.append(["settings:", *(f"    {s}" for s in settings)])
    for name in rng.sample(NAMES, rng.randint(1, 4)):
        title = rng.choice(["", ' "A title"', ' "Quote \\" and \\\\ slash"'])
        body = [clause(rng) for _ in range(rng.randint(1, 5))]
        if rng.random() < 0.4:
            blocks.append([f"rule {name}{title}: {', '.join(body)}"])
            continue
        block = [f"rule {name}{title}:"]
        for item in body:
            if rng.random() < 0.2:
                block.append("    # about " + item.split()[0])
            block.append(f"    {item}" + ("  # why" if rng.random() < 0.15 else ""))
        blocks.append(block)
    rng.shuffle(blocks)
    lines: list[str] = []
    if rng.random() < 0.5:
        lines += ["# " + rng.choice(["header", "Smile Dental", "policy"])]
        lines += [""] if rng.random() < 0.5 else []
    for block in blocks:
        lines += block
        lines += [""] * rng.randint(0, 2)
    if rng.random() < 0.3:
        lines.append("# the end")
    return "\n".join(lines) + "\n"


def rule_files() -> st.SearchStrategy[str]:
    return st.builds(rule_file, st.integers(min_value=0, max_value=2**32))
