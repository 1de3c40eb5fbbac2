"""How many examples a property test draws: all of them in the full run (CI's), a quarter in
the quick tier (``pytest -m "not slow"``), which tests/conftest.py tells this module.

The suite's profile is derandomized, so the quick tier's examples are the first of the full
run's: it checks less, never something else.
"""

from __future__ import annotations

#: Set by tests/conftest.py when the run leaves the slow tests out.
QUICK = False


def examples(full: int) -> int:
    """``full`` examples in the full run; a quarter of them (at least 10) in the quick tier."""
    return max(10, full // 4) if QUICK else full
