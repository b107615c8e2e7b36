"""Users' code type-checks against wsserver with mypy --strict, in the venv ``make`` builds.

The scripts are copied outside the repository first, so that mypy finds
wsserver as a user's project would: installed in the virtual environment.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent / "typing_examples"


def mypy(tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(EXAMPLES / name, tmp_path / name)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("name", ["user_app.py"])
def test_a_user_script_type_checks(tmp_path: Path, name: str) -> None:
    done = mypy(tmp_path, name)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_catches_each_mistake_where_its_comment_says(tmp_path: Path) -> None:
    done = mypy(tmp_path, "mistakes.py")
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    source = (EXAMPLES / "mistakes.py").read_text().splitlines()
    marked = [number for number, line in enumerate(source, 1) if "# error:" in line]
    assert [int(line.split(":")[1]) for line in errors] == marked, done.stdout
    assert "type-var" in errors[0] and "encoding" in errors[1]


@pytest.mark.parametrize(
    "method",
    ["__init__", "websocket", "add_websocket_route", "get", "add_route", "on_startup"],
)
def test_the_route_signatures_resolve_at_run_time(method: str) -> None:
    # What introspection (typing.get_type_hints: Sphinx's autodoc, a framework
    # reading a signature) asks of them: an on_connect's type named a Request
    # that routing.py imported for mypy only, a NameError at run time.
    import typing

    from wsserver import Route, Router

    owner = Route if method == "__init__" else Router
    assert typing.get_type_hints(getattr(owner, method))


@pytest.mark.parametrize("client", ["TestClient", "SyncTestClient"])
def test_the_request_shortcuts_take_what_request_takes(client: str) -> None:
    # get(), post()... are typed with RequestOptions (a misspelt option is
    # mypy's error, mistakes.py): it must name request()'s keywords, no fewer.
    import inspect

    from wsserver import testing, testing_sync

    owner = getattr(testing, client, None) or getattr(testing_sync, client)
    keywords = [
        name
        for name, parameter in inspect.signature(owner.request).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    assert list(testing.RequestOptions.__annotations__) == keywords
    for method in ("get", "head", "options", "post", "put", "patch", "delete"):
        assert getattr(owner, method).__name__ == method
