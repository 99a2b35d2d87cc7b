"""The cloud's public surface (what fleet and the launcher may use) is deliberate: pinned here,
and every name in it resolves (httpx style)."""

from __future__ import annotations

import cloud


def test_cloud_all_is_pinned_and_resolves() -> None:
    assert cloud.__all__ == [
        "FLEET_READERS",
        "CloudServices",
        "Extension",
        "Principal",
        "Role",
        "Security",
        "Terminal",
        "audit",
        "create_app",
        "require",
        "service_client",
        "service_client_id",
    ]
    for name in cloud.__all__:
        assert getattr(cloud, name) is not None
    try:
        cloud.Oversight  # noqa: B018 - internal: not exported
    except AttributeError as err:
        assert "Oversight" in str(err)
    else:
        raise AssertionError("cloud.Oversight should not be public")


def test_fleet_settings_read_their_toml_section(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from fleet.settings import FleetSettings

    config = tmp_path / "cuntong.toml"
    config.write_text("[fleet]\ndisk_alert_pct = 80\n[cloud]\ndb_url = 'sqlite://x'\n")
    monkeypatch.setenv("CUNTONG_CONFIG", str(config))
    assert FleetSettings().disk_alert_pct == 80.0
    monkeypatch.setenv("CUNTONG_FLEET_DISK_ALERT_PCT", "70")
    assert FleetSettings().disk_alert_pct == 70.0  # the environment wins over the file


def test_catalogue_setting_keeps_its_variable(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    from common.settings import CloudSettings

    assert CloudSettings().catalogue is None
    monkeypatch.setenv("CUNTONG_CATALOGUE", "/banks/shaanxi.toml")
    assert CloudSettings().catalogue == Path("/banks/shaanxi.toml")
