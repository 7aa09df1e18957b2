"""One cache mechanism (issue 19 #5): src/ and workers/ memoise only through tally.core.cache's
bounded Cache, built per app in services/container.py build_caches and sized by CACHE_SIZES.

functools' memos (`lru_cache`, `cache`) are process-wide: one with maxsize=None grows with its
input for the life of the process, and even a bounded one is a second mechanism beside Cache,
sized and reported nowhere. Per-instance `cached_property` is allowed (it lives as its object).
"""
from __future__ import annotations

import ast
from pathlib import Path

from tests.architecture.test_layers import modules

MEMOS = {"lru_cache", "cache"}


def memos_in(tree: ast.AST) -> list[int]:
    """Lines that import or name a functools memo (`from functools import lru_cache`,
    `functools.cache`, `import functools as f; f.lru_cache`)."""
    aliases = {"functools"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name == "functools"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "functools":
            found += [node.lineno for a in node.names if a.name in MEMOS]
        elif (isinstance(node, ast.Attribute) and node.attr in MEMOS
              and isinstance(node.value, ast.Name) and node.value.id in aliases):
            found.append(node.lineno)
    return found


def violations(found: dict[str, Path]) -> list[str]:
    return [f"{name}:{line}: a functools memo; use tally.core.cache.Cache from build_caches"
            for name, path in found.items()
            for line in memos_in(ast.parse(path.read_text(encoding="utf-8")))]


def test_nothing_memoises_outside_the_one_cache_mechanism():
    assert violations(modules()) == []


def test_the_rule_catches_unbounded_and_bounded_memos(tmp_path):
    sources = {
        "unbounded": "from functools import lru_cache\n\n@lru_cache(maxsize=None)\n"
                     "def f(x):\n    return x\n",
        "cache": "import functools\n\n@functools.cache\ndef f(x):\n    return x\n",
        "aliased": "import functools as ft\n\nf = ft.lru_cache(maxsize=64)(len)\n",
        "fine": "from functools import cached_property, partial, wraps\n",
    }
    paths = {}
    for name, text in sources.items():
        paths[name] = tmp_path / f"{name}.py"
        paths[name].write_text(text, encoding="utf-8")
    found = violations(paths)
    assert [line.split(":")[0] for line in found] == ["unbounded", "cache", "aliased"]
