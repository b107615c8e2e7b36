"""``--baseline REV``: wsserver at another git revision, measured beside the working tree's.

A refactor is best judged before/after in one interleaved run, so that the
machine's drift spreads over both. The baseline's code is a ``git worktree`` of
REV under benchmarks/.cache, with its C accelerator built in place, and its
columns (``wsserver-base``, ``wsserver-base-uvloop``) run the very same command
as ``wsserver``'s with the project venv's Python. Only what ``import wsserver``
finds differs: the server starts in a directory that holds nothing but a
``wsserver`` link to the worktree's package, with PYTHONPATH that directory and
then the repository, so the editable install (a finder appended after
sys.path's) and the repository's own ``wsserver/`` are both shadowed, while
``benchmarks.servers.wsserver_app`` (wsserver's public API only) still comes
from the working tree. :func:`prepare` checks this in a process started like
the servers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.matrix import clean_environ
from benchmarks.prepare import CACHE, PROJECT_PYTHON, ROOT, Log, SetupError, _run

_PROBE = """
import json, os, sys
import wsserver
import benchmarks.servers.wsserver_app
try:
    try:
        from wsserver.protocol import frames  # the layout since the connection layer was split
    except ImportError:
        from wsserver import frames
    speedups = bool(frames.SPEEDUPS)
except (ImportError, AttributeError):
    speedups = None
print(json.dumps({
    "wsserver_file": wsserver.__file__,
    "wsserver_realpath": os.path.realpath(wsserver.__file__),
    "app_file": benchmarks.servers.wsserver_app.__file__,
    "speedups_loaded": speedups,
}))
"""


@dataclass(frozen=True)
class Baseline:
    """A revision of wsserver and where its code is checked out."""

    rev: str  # as given to --baseline
    commit: str  # the full hash
    short: str

    @property
    def worktree(self) -> Path:
        return CACHE / f"baseline-{self.commit}"

    @property
    def import_dir(self) -> Path:
        """The baseline servers' cwd and first PYTHONPATH entry: only a ``wsserver`` link."""
        return CACHE / f"baseline-{self.commit}.import"

    def environ(self) -> dict[str, str]:
        """What a baseline server adds to the environment of a ``wsserver`` one."""
        return {"PYTHONPATH": f"{self.import_dir}:{ROOT}"}

    def as_meta(self) -> dict[str, str]:
        return {"rev": self.rev, "commit": self.commit, "short": self.short}

    @classmethod
    def from_meta(cls, meta: dict[str, str]) -> Baseline:
        return cls(meta["rev"], meta["commit"], meta["short"])


def resolve(rev: str) -> Baseline:
    """``rev`` as a commit of this repository; SystemExit when it is none."""
    git = ["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet"]
    commit = subprocess.run(
        [*git, f"{rev}^{{commit}}"], capture_output=True, text=True, check=False
    )
    if commit.returncode != 0:
        raise SystemExit(f"--baseline {rev!r} is not a commit of {ROOT}")
    full = commit.stdout.strip()
    short = subprocess.run([*git, "--short", full], capture_output=True, text=True, check=True)
    return Baseline(rev, full, short.stdout.strip())


def prepare(baseline: Baseline, log: Log) -> dict[str, Any]:
    """Check out (or reuse) the worktree, build its accelerator, check what the servers import.

    Returns what the report's header says about the baseline.
    """
    tree = baseline.worktree
    if _head(tree) != baseline.commit:
        log(f"checking out wsserver @ {baseline.short} (git worktree, {tree})")
        shutil.rmtree(tree, ignore_errors=True)
        _run(["git", "-C", str(ROOT), "worktree", "prune"], log)
        add = ["worktree", "add", "--detach", str(tree), baseline.commit]
        _run(["git", "-C", str(ROOT), *add], log)
    dirty = _run(["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"], log)
    if dirty.strip():
        raise SetupError(
            f"the baseline worktree {tree} has local changes, so it is not {baseline.short}: "
            f"remove it (git worktree remove --force {tree}) and run again"
        )
    # optional=True in setup.py: without a compiler this builds nothing, and the probe says so.
    _run([str(PROJECT_PYTHON), "setup.py", "--quiet", "build_ext", "--inplace"], log, cwd=tree)
    link = baseline.import_dir / "wsserver"
    if not link.is_symlink():
        baseline.import_dir.mkdir(parents=True, exist_ok=True)
        link.symlink_to(tree / "wsserver", target_is_directory=True)
    return {**baseline.as_meta(), **probe(baseline)}


def probe(baseline: Baseline) -> dict[str, Any]:
    """Import wsserver as a baseline server would; SetupError unless it is the worktree's."""
    done = subprocess.run(
        [str(PROJECT_PYTHON), "-c", _PROBE],
        cwd=baseline.import_dir,
        env={**clean_environ(), **baseline.environ()},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SetupError(f"the baseline's wsserver does not import:\n{done.stderr[-3000:]}")
    found: dict[str, Any] = json.loads(done.stdout)
    if not Path(found["wsserver_realpath"]).is_relative_to(baseline.worktree):
        raise SetupError(f"the baseline servers would import {found['wsserver_realpath']}")
    if Path(found["app_file"]) != ROOT / "benchmarks" / "servers" / "wsserver_app.py":
        raise SetupError(f"the baseline servers would load the app from {found['app_file']}")
    return found


def _head(tree: Path) -> str | None:
    """The commit checked out in ``tree``, if it is a worktree."""
    if not (tree / ".git").exists():
        return None
    done = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else None
