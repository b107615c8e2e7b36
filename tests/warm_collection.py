"""Have pytest's rewritten test modules cached before ``make test``'s workers start.

pytest rewrites each test module's ``assert`` statements on import, some
10 s of CPU for this suite, and caches the result (beside the bytecode:
``PYTHONPYCACHEPREFIX``, the venv's, under ``make``). On a fresh clone every
one of ``make test``'s six workers did it all at once, a minute of CPU on
two cores; here two processes collect half the files each, so the workers
find them cached. Only the modules not cached (or changed since) are
collected: nothing when every one is.

Run as ``python -m tests.warm_collection`` from the repository's root.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

HALVES = 2


def _cached(module: Path) -> bool:
    """Whether pytest's rewrite of ``module`` as it is now is in the cache
    (pytest's pyc holds the hash of the source it was made from)."""
    prefix = sys.pycache_prefix
    name = f"{module.stem}.{sys.implementation.cache_tag}-pytest-{pytest.__version__}.pyc"
    if prefix:
        cached = Path(prefix, *module.resolve().parent.parts[1:], name)
    else:
        cached = module.parent / "__pycache__" / name
    try:
        with open(cached, "rb") as pyc:
            head = pyc.read(16)
        source = module.read_bytes()
    except OSError:
        return False
    return head[8:16] == importlib.util.source_hash(source)[:8]


def main() -> int:
    tests = Path(__file__).parent
    modules = sorted(tests.glob("test_*.py"), key=lambda path: -path.stat().st_size)
    stale = [module for module in modules if not _cached(module)]
    if sys.dont_write_bytecode or not stale:
        return 0
    halves: list[list[str]] = [[] for _ in range(min(HALVES, len(stale)))]
    sizes = [0] * len(halves)
    for module in stale:  # (the largest first, each to the lighter half)
        lighter = sizes.index(min(sizes))
        halves[lighter].append(str(module))
        sizes[lighter] += module.stat().st_size
    collecting = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "--collect-only",
                "-p",
                "no:cacheprovider",
                *half,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for half in halves
    ]
    for process in collecting:
        process.wait()
    return 0  # (a module that does not import is make test's to say)


if __name__ == "__main__":
    sys.exit(main())
