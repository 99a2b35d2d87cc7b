from pathlib import Path

import pytest

from common.errors import ConfigError
from common.settings import AgentSettings, CloudSettings, load


def test_environment_then_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cuntong.toml"
    config.write_text(
        '[agent]\nterminal_id = "SX-9"\nbroker_port = 8883\ntelemetry_interval_s = 20\n'
        '[cloud]\ndb_url = "postgres://u@h/db"\n'
    )
    monkeypatch.setenv("CUNTONG_CONFIG", str(config))
    monkeypatch.setenv("CUNTONG_AGENT_TELEMETRY_INTERVAL_S", "30")
    agent = load(AgentSettings)
    assert (agent.terminal_id, agent.broker_port, agent.telemetry_interval_s) == ("SX-9", 8883, 30)
    assert load(CloudSettings).db_url == "postgres://u@h/db"


def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUNTONG_AGENT_BROKER_PORT", "70000")
    with pytest.raises(ConfigError, match="CUNTONG_AGENT_BROKER_PORT"):
        load(AgentSettings, terminal_id="T1")
    with pytest.raises(ConfigError, match="TERMINAL_ID"):
        load(AgentSettings, terminal_id="no/slashes")
    with pytest.raises(ConfigError, match="DB_URL"):
        load(CloudSettings, db_url="mysql://x")


def test_unknown_toml_keys_and_missing_file_are_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[agent]\nterminal_id = "T1"\nbrokr_port = 1\n')
    monkeypatch.setenv("CUNTONG_CONFIG", str(config))
    with pytest.raises(ConfigError, match="BROKR_PORT"):
        load(AgentSettings)
    monkeypatch.setenv("CUNTONG_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="not a file"):
        load(AgentSettings, terminal_id="T1")
