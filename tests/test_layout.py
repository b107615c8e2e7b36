"""The layers of the package, as the README's layout table describes them.

``wsserver.protocol`` (sans-I/O) <- ``wsserver.app`` (plain Python) <-
``wsserver.asgi`` (ASGI events <-> our connections) <- ``wsserver.server``
(asyncio) <- the package's top (public API, CLI). Imports only go that way,
and no module imports itself back through others. Imports under ``if
TYPE_CHECKING:`` are for annotations only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "wsserver"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path: Path) -> set[str]:
    """The modules ``path`` imports when it runs (absolute names)."""
    tree = ast.parse(path.read_text())
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                found.add(prefix)
                # "from . import x" may name a submodule.
                found.update(f"{prefix}.{alias.name}" for alias in node.names)
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    visit([child])

    visit(tree.body)
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    return {
        m for m in runtime_imports(MODULES[name]) if m in MODULES or m.split(".")[0] != "wsserver"
    }


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("wsserver.protocol")))
def test_sans_io_core_imports_no_io_and_nothing_above_it(name: str) -> None:
    imported = imports_of(name)
    assert not {"asyncio", "socket", "selectors", "time", "ssl"} & imported, imported
    above = {
        m for m in imported if m.startswith(("wsserver.server", "wsserver.asgi", "wsserver.app"))
    }
    assert not above and "wsserver.config" not in imported, imported


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("wsserver.app")))
def test_app_layer_is_plain_python_below_the_server(name: str) -> None:
    imported = imports_of(name)
    assert "asyncio" not in imported
    assert not {m for m in imported if m.startswith(("wsserver.server", "wsserver.asgi"))}, imported


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("wsserver.asgi")))
def test_asgi_layer_is_below_the_server(name: str) -> None:
    # It is handed the server's connections and only calls them.
    imported = imports_of(name)
    assert not {m for m in imported if m.startswith("wsserver.server")}, imported


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("wsserver.broker")))
def test_brokers_know_nothing_of_connections(name: str) -> None:
    # A broker carries bytes between processes; the server's topics deliver them.
    imported = imports_of(name)
    assert not {m for m in imported if m.startswith(("wsserver.server", "wsserver.asgi"))}
    assert not {m for m in imported if m.startswith(("wsserver.app", "wsserver.protocol"))}
    # (Nor of the settings, which declare theirs from the brokers' rules.)
    assert "wsserver.config" not in imported, imported


def test_the_websocket_side_never_refers_back_to_the_http_side() -> None:
    for name in MODULES:
        if name.startswith("wsserver.server.") and name != "wsserver.server.http_protocol":
            if name == "wsserver.server.server":
                continue  # the server makes HttpProtocols for the listening socket
            assert "wsserver.server.http_protocol" not in imports_of(name), name


def test_no_import_cycles() -> None:
    graph = {name: {m for m in imports_of(name) if m in MODULES and m != name} for name in MODULES}
    # A package's __init__ may import from its own modules (re-exports), which
    # import the package itself first: that is not a cycle between modules.
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
    done: set[str] = set()

    def walk(name: str, stack: list[str]) -> None:
        if name in stack:
            raise AssertionError("import cycle: " + " -> ".join([*stack, name]))
        if name in done:
            return
        for dep in sorted(graph[name]):
            walk(dep, [*stack, name])
        done.add(name)

    for name in sorted(graph):
        walk(name, [])
