"""The benchmarks' shared ending: one ``TARGET <name> <measured> <= <limit> PASS|FAIL`` line
per target, and the exit status (0 if every target passed, else 1)."""

from __future__ import annotations

from collections.abc import Iterable


def report_targets(targets: Iterable[tuple[str, float, float]], *, digits: int = 2) -> int:
    """Print a TARGET line for each (name, measured, limit); return 1 if any failed, else 0."""
    print()
    failed = False
    for name, value, limit in targets:
        ok = value <= limit
        failed |= not ok
        print(f"TARGET {name} {value:.{digits}f} <= {limit:g} {'PASS' if ok else 'FAIL'}")
    return 1 if failed else 0
