"""Installing a Debian package a test needs (Chromium, redis-server) when it is missing.

Tests never skip for a missing tool: they install it (``apt-get``, as root),
or fail saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

__all__ = ["PackageUnavailable", "apt_install"]


class PackageUnavailable(RuntimeError):
    """A package is not installed and could not be installed."""


def apt_install(package: str, timeout: float = 1200, quiet: bool = True) -> None:
    """``apt-get update`` and ``apt-get install -y package``.

    Raises:
        PackageUnavailable: ``apt-get`` is missing, we are not root, or it failed.
    """
    if shutil.which("apt-get") is None:
        raise PackageUnavailable(f"{package} is not installed and apt-get is not available")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise PackageUnavailable(
            f"{package} is not installed and installing it needs root: apt-get install -y {package}"
        )
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
