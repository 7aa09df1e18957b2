"""The settings table (issue 20 #9): every variable it lists is read with its type and default,
README's table and config/example.env are generated from it, and `.env` is read in development
only, under the environment."""
from __future__ import annotations

import os
import re

import pytest

from tally import settings
from tally.errors import ConfigError
from tally.settings import BY_ATTR, SETTINGS, Base, from_env

from tests.support.processes import ROOT

# A value of each kind other than its default, as the environment spells it, and as read.
SAMPLES = {"str": ("elsewhere", "elsewhere"), "bool": ("yes", True), "int": ("7", 7),
           "float": ("0.5", 0.5), "level": ("info", "INFO")}


def test_readme_s_configuration_table_is_the_settings_table():
    readme = (ROOT / "README.md").read_text()
    assert settings.readme_with_table(readme) == readme, \
        "README's configuration table is stale: run `python -m tally.settings`"


def test_example_env_is_generated_from_the_settings_table():
    assert (ROOT / "config" / "example.env").read_text() == settings.example_env(), \
        "config/example.env is stale: run `python -m tally.settings`"


def test_every_tally_variable_the_code_names_is_in_the_table():
    named = set()
    for path in (ROOT / "src" / "tally").rglob("*.py"):
        named |= set(re.findall(r"\bTALLY_[A-Z_]*[A-Z]\b", path.read_text()))
    # Not configuration: the edge's private channel to Caddy (tally.edge), and the shell
    # variables the development banner exports for its curl lines.
    internal = {"TALLY_EDGE_SOCKET", "TALLY_EDGE_LISTEN", "TALLY_EDGE_MAX_BODY",
                "TALLY_EDGE_BUFFER", "TALLY_TOKEN", "TALLY_SERVICE_TOKEN"}
    assert named - internal - {setting.name for setting in SETTINGS} == set()


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.attr], ids=lambda s: s.name)
def test_each_setting_is_read_from_its_variable_and_defaults_to_the_table(setting):
    raw, value = SAMPLES[setting.kind]
    assert getattr(from_env({}), setting.attr) == setting.default == getattr(Base, setting.attr)
    # (a counter cluster needs a queue Redis of its own)
    queue = {"TALLY_QUEUE_URL": "redis://q:1/0"} if setting.name == "TALLY_REDIS_CLUSTER" else {}
    assert getattr(from_env({setting.name: raw, **queue}), setting.attr) == value


@pytest.mark.parametrize("name, raw, message", [
    ("TALLY_POLL_INTERVAL", "0", "TALLY_POLL_INTERVAL must be at least 1, not 0"),
    ("TALLY_WORKER_MAX_JOBS", "lots", "TALLY_WORKER_MAX_JOBS must be an integer, not 'lots'"),
    ("TALLY_REDIS_CLUSTER", "perhaps", "TALLY_REDIS_CLUSTER must be true or false, not 'perhaps'"),
    ("TALLY_RQ_LOG_LEVEL", "loud", "TALLY_RQ_LOG_LEVEL must be one of DEBUG, INFO, WARNING, "
                                   "ERROR, CRITICAL, not 'loud'"),
    ("TALLY_ENV", "staging", "TALLY_ENV must be one of development, test, production, "
                             "not 'staging'"),
])
def test_a_bad_value_names_the_variable_what_it_must_be_and_what_it_was(name, raw, message):
    with pytest.raises(ConfigError) as raised:
        from_env({name: raw})
    assert raised.value.message == message


@pytest.fixture
def dotenv(tmp_path, monkeypatch):
    """A working directory with a .env, and a process environment without TALLY_ variables."""
    for name in [name for name in os.environ if name.startswith("TALLY_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("TALLY_POLL_INTERVAL=45\nTALLY_REDIS_URL=redis://dotenv:1/0\n"
                                   "TALLY_ENV=production\n")
    return tmp_path


def test_development_reads_dot_env_under_the_environment(dotenv, monkeypatch):
    monkeypatch.setenv("TALLY_REDIS_URL", "redis://environment:1/0")
    config = from_env()
    # the .env fills in what the environment does not set, and cannot choose TALLY_ENV
    assert (config.ENV, config.POLL_INTERVAL, config.REDIS_URL) == \
        ("development", 45, "redis://environment:1/0")


@pytest.mark.parametrize("env", ["production", "test"])
def test_production_and_test_never_read_dot_env(dotenv, monkeypatch, env):
    monkeypatch.setenv("TALLY_ENV", env)
    config = from_env()
    assert (config.ENV, config.POLL_INTERVAL) == (env, 30)


def test_an_explicit_environment_is_read_alone(dotenv):
    assert from_env({}).POLL_INTERVAL == 30  # tests and tools that pass one get no .env


def test_a_bad_value_in_dot_env_names_its_variable(dotenv):
    (dotenv / ".env").write_text("TALLY_POLL_INTERVAL=often\n")
    with pytest.raises(ConfigError, match="TALLY_POLL_INTERVAL must be an integer"):
        from_env()


def test_every_table_attribute_is_a_config_attribute():
    assert set(BY_ATTR) <= set(dir(Base))
