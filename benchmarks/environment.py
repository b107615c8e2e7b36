"""What the results were measured on: the machine and every version involved."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.matrix import clean_environ
from benchmarks.prepare import NODE_DIR, PEERS_PYTHON, PROJECT_PYTHON, ROOT, go_env

_PYTHON_PROBE = """
import importlib.metadata as md, json, sys
out = {"python": sys.version.split()[0]}
for name in sys.argv[1:]:
    try:
        out[name] = md.version(name)
    except md.PackageNotFoundError:
        out[name] = None
try:
    try:
        from wsserver.protocol import frames  # the layout since the connection layer was split
    except ImportError:
        from wsserver import frames
    out["speedups_loaded"] = frames.SPEEDUPS
except ImportError:
    pass
try:
    from wsserver.protocol import deflate
    out["deflate"] = deflate.ZLIB  # zlib, or zlib-ng with the speedups extra
except (ImportError, AttributeError):
    out["deflate"] = "zlib"
print(json.dumps(out))
"""


# bufferutil falls back to JavaScript when its native addon does not load.
_NATIVE_BUFFERUTIL = (
    "process.stdout.write(String(require('bufferutil').mask.toString().includes('[native code]')))"
)


#: The versions the report names, from the peers' venv.
PEER_PACKAGES = (
    *("websockets", "aiohttp", "picows", "uvloop"),
    *("uvicorn", "hypercorn", "granian", "h11", "wsproto"),
    *("python-socketio", "python-engineio", "redis", "hiredis"),
)


def collect(redis_server: str | None = None) -> dict[str, object]:
    """The header facts of a report (with the redis-server binary, its version)."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(_mem_total_kib() / 1024 / 1024, 1),
        "kernel": platform.release(),
        "git": _git_state(),
        "project": _python_versions(
            PROJECT_PYTHON, {}, "wsserver", "uvloop", "redis", "hiredis", "zlib-ng"
        ),
        "project_no_speedups": _python_versions(PROJECT_PYTHON, {"WSSERVER_NO_SPEEDUPS": "1"}),
        "speedups_files": sorted(p.name for p in (ROOT / "wsserver").rglob("_speedups*.so")),
        "peers": _python_versions(PEERS_PYTHON, {}, *PEER_PACKAGES),
        "node": _output(["node", "--version"]),
        "node_packages": {
            name: _package_version(NODE_DIR / "node_modules" / name / "package.json")
            for name in ("ws", "bufferutil")
        },
        "bufferutil_native": _output(["node", "-e", _NATIVE_BUFFERUTIL], cwd=NODE_DIR) == "true",
        "go": _output(["go", "version"], env=go_env()),
        "redis_server": _output([redis_server, "--version"]) if redis_server else None,
    }


def _git_state() -> str:
    """The commit measured, and whether wsserver/ had uncommitted changes."""
    commit = _output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    if not commit:
        return "unknown"
    dirty = _output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "wsserver"])
    return f"{commit} + uncommitted changes in wsserver/" if dirty else commit


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _python_versions(python: Path, env: dict[str, str], *packages: str) -> dict[str, object]:
    out = _output(
        [str(python), "-c", _PYTHON_PROBE, *packages],
        cwd=ROOT,
        env={**clean_environ(), **env},
    )
    return json.loads(out) if out else {}


def _package_version(path: Path) -> str | None:
    try:
        return str(json.loads(path.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def _output(cmd: list[str], **kwargs: object) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, **kwargs)  # type: ignore[call-overload]
    except (OSError, subprocess.CalledProcessError):
        return ""
    return str(done.stdout).strip()
