"""Everything the harness needs before it measures: the peers' venv, Node's
``ws``, the Go toolchain and the load generator binary; for the rows that need
them, a test certificate (TLS) and Debian's redis-server (fan-out).

Each step is idempotent: it records a digest of its inputs in a stamp file and
does nothing while the inputs are unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = BENCH / ".cache"

PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
PEERS_VENV = BENCH / ".venv-peers"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
PEERS_REQUIREMENTS = BENCH / "requirements-peers.txt"
NODE_DIR = BENCH / "node"
LOADGEN_SRC = BENCH / "loadgen"
LOADGEN_BIN = CACHE / "loadgen"
TLS_DIR = CACHE / "tls"

Log = Callable[[str], None]


class SetupError(RuntimeError):
    """A prerequisite could not be installed or built."""


@dataclass(frozen=True)
class Certs:
    """A test CA and a certificate it signed for 127.0.0.1 and localhost (PEM files)."""

    ca: Path
    cert: Path
    key: Path


def prepare_all(
    python: str,
    log: Log,
    *,
    need_node: bool = True,
    need_tls: bool = False,
    need_redis: bool = False,
) -> tuple[Certs | None, str | None]:
    """Make sure the peers' venv, node_modules and the load generator exist, and
    the certificate and redis-server when asked for; returns those two."""
    peers_venv(python, log)
    if need_node:
        node_modules(log)
    loadgen(log)
    certs = tls_certificates(log) if need_tls else None
    redis = redis_server(log) if need_redis else None
    return certs, redis


_MAKE_CERTS = """
import sys, trustme
ca = trustme.CA()
cert = ca.issue_cert("127.0.0.1", "localhost")
ca.cert_pem.write_to_path(sys.argv[1])
cert.cert_chain_pems[0].write_to_path(sys.argv[2])
for pem in cert.cert_chain_pems[1:]:
    pem.write_to_path(sys.argv[2], append=True)
cert.private_key_pem.write_to_path(sys.argv[3])
"""


def tls_certificates(log: Log) -> Certs:
    """A test CA and server certificate in benchmarks/.cache/tls, made once with trustme
    (the project venv has it: the test extra)."""
    certs = Certs(TLS_DIR / "ca.pem", TLS_DIR / "server.pem", TLS_DIR / "server.key")
    if all(p.is_file() for p in (certs.ca, certs.cert, certs.key)):
        return certs
    log("making a test CA and certificate for 127.0.0.1 (trustme) in benchmarks/.cache/tls")
    TLS_DIR.mkdir(parents=True, exist_ok=True)
    _run(
        [str(PROJECT_PYTHON), "-c", _MAKE_CERTS, str(certs.ca), str(certs.cert), str(certs.key)],
        lambda _: None,  # the line above says what it does
    )
    return certs


def redis_server(log: Log) -> str:
    """The redis-server binary; installs Debian's redis-server when missing and root.

    Only the binary: each measurement starts a private instance of its own
    (:mod:`benchmarks.broker`), never one that happens to be running.
    """
    found = shutil.which("redis-server")
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SetupError("the fan-out rows need redis-server: apt-get install redis-server")
    log("installing Debian's redis-server")
    apt_install("redis-server", log)
    found = shutil.which("redis-server")
    if found is None:
        raise SetupError("redis-server was installed but is not on PATH")
    return found


def apt_install(package: str, log: Log) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=300"]  # another apt may be running
    _run(["apt-get", "update", "-qq", *lock], log, env=env)
    _run(["apt-get", "install", "-y", "-qq", *lock, package], log, env=env)


def _digest(paths: Iterable[Path], *extra: str) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for item in extra:
        h.update(item.encode() + b"\0")
    return h.hexdigest()


def _fresh(stamp: Path, digest: str) -> bool:
    return stamp.is_file() and stamp.read_text().strip() == digest


def _run(cmd: list[str], log: Log, **kwargs: object) -> str:
    log("$ " + " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise SetupError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return str(done.stdout)


def _version_of(executable: str) -> str:
    done = subprocess.run(
        [executable, "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def peers_venv(python: str, log: Log) -> None:
    """benchmarks/.venv-peers with exactly the pinned requirements."""
    stamp = PEERS_VENV / ".bench-stamp"
    digest = _digest([PEERS_REQUIREMENTS], _version_of(python))
    if _fresh(stamp, digest):
        return
    log("creating the peers' venv (benchmarks/.venv-peers)")
    shutil.rmtree(PEERS_VENV, ignore_errors=True)
    _run([python, "-m", "venv", str(PEERS_VENV)], log)
    pip = [str(PEERS_PYTHON), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    _run([*pip, "install", "-r", str(PEERS_REQUIREMENTS)], log)
    stamp.write_text(digest + "\n")


def node_modules(log: Log) -> None:
    """benchmarks/node/node_modules from package-lock.json (npm ci)."""
    stamp = NODE_DIR / "node_modules" / ".bench-stamp"
    digest = _digest([NODE_DIR / "package.json", NODE_DIR / "package-lock.json"])
    if _fresh(stamp, digest):
        return
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise SetupError("node and npm are needed for the Node ws reference server")
    log("installing ws and bufferutil (npm ci)")
    _run(["npm", "ci", "--no-audit", "--no-fund"], log, cwd=NODE_DIR)
    stamp.write_text(digest + "\n")


def go_env() -> dict[str, str]:
    """Go's environment: caches under benchmarks/.cache, no module downloads."""
    env = dict(os.environ)
    env.update(
        GOCACHE=str(CACHE / "go-build"),
        GOPATH=str(CACHE / "gopath"),
        GOPROXY="off",
        GOFLAGS="",
        GO111MODULE="on",
        CGO_ENABLED="0",
    )
    return env


def go_toolchain(log: Log) -> str:
    """The go command; installs Debian's golang-go when missing and root."""
    go = shutil.which("go")
    if go is not None:
        return go
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SetupError("Go is needed to build the load generator: apt-get install golang-go")
    log("installing Debian's golang-go")
    apt_install("golang-go", log)
    go = shutil.which("go")
    if go is None:
        raise SetupError("golang-go was installed but go is not on PATH")
    return go


def loadgen(log: Log) -> Path:
    """Build the load generator when its sources (or Go) changed."""
    go = go_toolchain(log)
    env = go_env()
    sources = [*LOADGEN_SRC.glob("*.go"), LOADGEN_SRC / "go.mod"]
    version = _run([go, "version"], lambda _: None, env=env).strip()
    stamp = CACHE / "loadgen.stamp"
    digest = _digest(sources, version)
    if LOADGEN_BIN.is_file() and _fresh(stamp, digest):
        return LOADGEN_BIN
    log(f"building the load generator ({version})")
    CACHE.mkdir(parents=True, exist_ok=True)
    _run([go, "build", "-trimpath", "-o", str(LOADGEN_BIN), "."], log, cwd=LOADGEN_SRC, env=env)
    stamp.write_text(digest + "\n")
    return LOADGEN_BIN
