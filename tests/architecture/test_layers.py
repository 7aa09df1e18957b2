"""The import rule of docs/architecture.md, checked on the source tree (issue 18 #1).

Imports point inward: entry points (app, cli, tally.workers, wsgi, the workers/ scripts) → http,
auth → services → stores → core. tally.dev is imported by nothing outside it; tests' helpers are
not imported by src/.
A function-level import is allowed only with a `# load order:` comment saying why.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"

# What each part of tally may import from tally (besides itself). Third-party imports are free,
# except that tally.core imports the standard library only.
ALLOWED: dict[str, set[str]] = {
    "tally.errors": set(),
    "tally.core": {"tally.errors"},
    "tally.progress": set(),
    "tally.settings": {"tally.errors"},  # ConfigError lives in the one TallyError tree
    "tally.jobs": set(),
    "tally.observability": {"tally.errors", "tally.core", "tally.settings"},
    "tally.stores": {"tally.errors", "tally.core"},
    # settings: the typed config in services.container.Services (settings imports only errors)
    "tally.services": {"tally.errors", "tally.core", "tally.stores", "tally.jobs", "tally.settings",
                       "tally.progress", "tally.observability"},
    "tally.extensions": {"tally.errors", "tally.core", "tally.stores", "tally.services",
                         "tally.settings"},
    "tally.auth": {"tally.errors", "tally.core", "tally.services", "tally.extensions",
                   "tally.settings", "tally.observability"},
    "tally.http": {"tally.errors", "tally.core", "tally.services", "tally.extensions",
                   "tally.settings", "tally.observability", "tally.auth", "tally.jobs"},
    "tally.edge": {"tally.settings"},
    "tally.cli": {"tally.errors", "tally.core", "tally.services", "tally.extensions",
                  "tally.settings", "tally.progress", "tally.auth", "tally.app"},
    "tally.app": {"tally.errors", "tally.core", "tally.extensions", "tally.settings",
                  "tally.observability", "tally.auth", "tally.http", "tally.cli"},
    "tally.workers": {"tally.errors", "tally.core", "tally.services", "tally.extensions",
                      "tally.settings", "tally.observability", "tally.jobs", "tally.app"},
    "workers": {"tally.workers"},  # the Procfile's scripts (not a package): thin, nothing else
    "tally.dev": {"*"},
}
PURE_STDLIB = "tally.core"


def part_of(module: str) -> str:
    """The ALLOWED entry a module belongs to (the longest matching prefix)."""
    best = ""
    for part in ALLOWED:
        if (module == part or module.startswith(part + ".")) and len(part) > len(best):
            best = part
    return best or module


def modules() -> dict[str, Path]:
    found = {}
    for base, top in ((SRC, "tally"), (ROOT, "workers")):
        for path in sorted((base / top).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(base).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    found["wsgi"] = ROOT / "wsgi.py"
    return found


def imports_of(path: Path, name: str) -> list[tuple[str, int, bool, str]]:
    """(imported module, line, at module level, the line's text) for each import in a file."""
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name.rsplit(".", node.level)[0] if not path.name == "__init__.py" \
                    else name.rsplit(".", node.level - 1)[0] if node.level > 1 else name
                base = f"{package}.{node.module}" if node.module else package
            else:
                base = node.module or ""
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        level = id(node) in top or _under_type_checking(tree, node)
        text = lines[node.lineno - 1] + (lines[node.lineno - 2] if node.lineno > 1 else "")
        for target in targets:
            found.append((target, node.lineno, level, text))
    return found


def _under_type_checking(tree: ast.Module, node: ast.AST) -> bool:
    for top in tree.body:
        if isinstance(top, ast.If) and "TYPE_CHECKING" in ast.unparse(top.test):
            if any(child is node for child in ast.walk(top)):
                return True
    return False


def _tally_target(target: str, known: dict[str, Path]) -> str | None:
    """The tally module an import names (a module, or the package of an imported name)."""
    while target:
        if target in known:
            return None if target == "tally" else target
        target = target.rpartition(".")[0]
    return None


def violations() -> list[str]:
    known = modules()
    found = []
    for name, path in known.items():
        own = part_of(name)
        allowed = ALLOWED.get(own, set())
        for target, line, top_level, text in imports_of(path, name):
            where = f"{path.relative_to(ROOT)}:{line}"
            if not top_level and "# load order:" not in text:
                found.append(f"{where}: {name} imports {target.rpartition('.')[0]} inside a "
                             "function without a `# load order:` reason")
            if own == PURE_STDLIB and not _stdlib_or_tally(target):
                found.append(f"{where}: tally.core imports {target} (stdlib only)")
            module = _tally_target(target, known)
            if module is None or module == name or name.startswith("tally.dev"):
                continue
            theirs = part_of(module)
            if theirs == own or "*" in allowed:
                continue
            if theirs.startswith("tally.dev"):
                found.append(f"{where}: {name} imports {module} (nothing imports tally.dev)")
            elif theirs not in allowed and own != "wsgi":
                found.append(f"{where}: {name} ({own}) imports {module} ({theirs})")
    return sorted(set(found))


def _stdlib_or_tally(target: str) -> bool:
    import sys
    top = target.split(".")[0]
    return top in sys.stdlib_module_names or top in ("tally", "__future__")


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        for target, _line, _top, _text in imports_of(path, name):
            module = _tally_target(target, known)
            if module and module != name and not name.startswith(module + "."):
                graph.setdefault(name, set()).add(module)
    return graph


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph, index, low, stack, on, out = import_graph(), {}, {}, [], set(), []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_imports_point_inward():
    found = violations()
    assert found == [], "\n".join(found)


def test_no_import_circles():
    assert cycles() == []


def test_the_rule_catches_a_violation(tmp_path, monkeypatch):
    # Given a core module that imports a store, the checker names it.
    fake = tmp_path / "src" / "tally" / "core"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("import redis\nfrom tally.stores import keys\n")
    (tmp_path / "workers").mkdir()
    (tmp_path / "wsgi.py").write_text("")
    (tmp_path / "src" / "tally" / "stores").mkdir()
    (tmp_path / "src" / "tally" / "stores" / "keys.py").write_text("")
    monkeypatch.setattr(__import__(__name__, fromlist=["x"]), "ROOT", tmp_path)
    monkeypatch.setattr(__import__(__name__, fromlist=["x"]), "SRC", tmp_path / "src")
    found = violations()
    assert any("tally.core imports redis" in line for line in found), found
    assert any("imports tally.stores.keys (tally.stores)" in line for line in found), found


@pytest.mark.parametrize("path", ["src/tally/core", "src/tally/services", "src/tally/stores"])
def test_layer_packages_exist(path):
    assert (ROOT / path / "__init__.py").exists()
