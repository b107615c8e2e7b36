"""Installing a Debian package a test needs (Chromium, redis-server) when it is missing.

Tests never skip for a missing tool: they install it (``apt-get``, as root),
or fail saying why. The test processes (pytest-xdist's workers) install one at
a time: see ``one_installer``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["PackageUnavailable", "find_or_install", "one_installer"]


@contextlib.contextmanager
def one_installer(what: str) -> Iterator[None]:
    """Hold the machine's lock for installing ``what``, waiting for another process holding it.

    Whoever waited must look again for what it wanted installed: the other
    process may have installed it meanwhile.
    """
    path = Path(tempfile.gettempdir()) / f"wsserver-tests-installing-{what}.lock"
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _installed(package: str) -> bool:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode == 0 and done.stdout.endswith("installed")


class PackageUnavailable(RuntimeError):
    """A package is not installed and could not be installed."""


def find_or_install(
    find: Callable[[], str | None], package: str, timeout: float = 1200, quiet: bool = True
) -> str:
    """What ``find`` returns, after ``apt-get install -y package`` when it returned None.

    ``find`` is asked while holding the installers' lock (see ``one_installer``):
    while another test process's ``apt-get`` runs, the binary may already be
    unpacked with the libraries it needs not yet in place, and a Chromium
    started then does not come up.

    Raises:
        PackageUnavailable: ``apt-get`` is missing, we are not root, it failed,
            or it succeeded and ``find`` still returns None.
    """
    with one_installer("debian-packages"):
        path = find()
        if path is not None:
            return path
        if shutil.which("apt-get") is None:
            raise PackageUnavailable(f"{package} is not installed and apt-get is not available")
        if hasattr(os, "geteuid") and os.geteuid() != 0:
            raise PackageUnavailable(
                f"{package} is not installed and installing it needs root:"
                f" apt-get install -y {package}"
            )
        if not _installed(package):
            _apt_get(package, timeout, quiet)
        path = find()
    if path is None:
        raise PackageUnavailable(f"apt-get installed {package} but its program is not found")
    return path


def _apt_get(package: str, timeout: float, quiet: bool) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    q = ["-qq"] if quiet else []
    deadline = time.monotonic() + timeout
    wait_for_lock = ["-o", "DPkg::Lock::Timeout=300"]  # another apt may be running
    for command in (
        ["apt-get", "update", *q, *wait_for_lock],
        ["apt-get", "install", "-y", *q, *wait_for_lock, package],
    ):
        remaining = max(1.0, deadline - time.monotonic())
        try:
            result = subprocess.run(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=quiet,
                text=True,
                timeout=remaining,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PackageUnavailable(f"{' '.join(command)} failed: {exc}") from exc
        if result.returncode != 0:
            output = ((result.stdout or "") + (result.stderr or ""))[-2000:]
            raise PackageUnavailable(
                f"{' '.join(command)} exited with {result.returncode}:\n{output}"
            )
