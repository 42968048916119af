"""The house's arrows run one way: no module of chatd imports, however
indirectly, a module that imports it, counting imports made only for type
checking (a cycle there is a cycle in the design, whatever Python tolerates at
run time). And only the reactor touches sockets (DESIGN.md, rule 1)."""

from __future__ import annotations

import ast
from pathlib import Path

import chatd

ROOT = Path(chatd.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """chatd module -> the chatd modules it imports (type-checking ones too)."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    if sub in modules:
                        edges.add(sub)  # "from chatd.core import hub": the submodule
                    elif node.module in modules:
                        edges.add(node.module)
        edges.discard(name)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(_imports()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_only_the_reactor_imports_socket_and_selectors() -> None:
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        if names & {"socket", "selectors"}:
            assert _module_name(path).startswith(ALLOWED_SOCKET_MODULES), path


#: The event loop and what it is cut into (listeners, connections); the admin and
#: chat clients, which are programs of their own with their own connection.
ALLOWED_SOCKET_MODULES = (
    "chatd.core.reactor",
    "chatd.core.listeners",
    "chatd.core.connection",
    "chatd.admin.client",
    "chatd.client",
    "chatd.bench",
)
