"""Installing the Debian packages the tests need: one installer at a time, across processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from .debian import find_or_install

ROOT = Path(__file__).resolve().parent.parent

HOLD_THE_LOCK = """
import sys
from tests.debian import one_installer
with one_installer("debian-packages"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_a_program_is_looked_for_only_when_no_other_process_is_installing() -> None:
    # Another test process in the middle of apt-get holds the lock; the
    # program it installs may be on disk already, without its libraries.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline() == "held\n"
        looked_at: list[float] = []
        found: list[str] = []

        def find() -> str:
            looked_at.append(time.monotonic())
            return sys.executable

        looker = threading.Thread(target=lambda: found.append(find_or_install(find, "python3")))
        looker.start()
        time.sleep(0.3)
        assert looked_at == []  # still waiting for the installer
        released = time.monotonic()
        holder.stdin.write("done\n")
        holder.stdin.flush()
        looker.join(60)
        assert not looker.is_alive()
        assert found == [sys.executable]
        assert len(looked_at) == 1 and looked_at[0] >= released
    finally:
        holder.kill()
        holder.wait()
