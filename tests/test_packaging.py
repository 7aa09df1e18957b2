"""setup.cfg lists packages by hand (src layout plus the workers package): keep it complete."""
from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def listed_packages() -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return {line.strip() for line in parser["options"]["packages"].splitlines() if line.strip()}


def package_dirs() -> set[str]:
    """Every directory of the two top-level packages holding Python modules or Lua scripts."""
    found = set()
    for base, top in ((ROOT / "src", "tally"), (ROOT, "workers")):
        for path in [base / top, *(base / top).rglob("*")]:
            if path.is_dir() and "__pycache__" not in path.parts and (
                    (path / "__init__.py").exists() or any(path.glob("*.lua"))):
                found.add(".".join(path.relative_to(base).parts))
    return found


def test_every_package_directory_is_listed_in_setup_cfg():
    assert package_dirs() == listed_packages()


def test_lua_scripts_and_migrations_ship_as_package_data():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    data = parser["options.package_data"]
    assert data["tally.stores.redis.lua"] == "*.lua"
    assert (ROOT / "src/tally/stores/sql/migrations/env.py").exists()
