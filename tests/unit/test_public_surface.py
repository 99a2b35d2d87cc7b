"""The cloud's public surface (what fleet and the launcher may use) is deliberate: pinned here,
and every name in it resolves (httpx style)."""

from __future__ import annotations

import ast
from pathlib import Path

import cloud


def test_cloud_all_is_pinned_and_resolves() -> None:
    assert cloud.__all__ == [
        "FLEET_READERS",
        "CloudServices",
        "Extension",
        "LeaseLost",
        "Principal",
        "ReviewItem",
        "Role",
        "Security",
        "TellerSession",
        "Terminal",
        "audit",
        "create_app",
        "fenced",
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


# --- every package uses its siblings and the libraries below only through their __all__ ---

PACKAGES = (
    "janus_client",
    "edge",
    "cloud",
    "fleet",
    "models",
    "modeltools",
    "firmware_adapters",
    "provisioning",
    "hsm",
    "corebank",
    "idcheck",
)
ROOT = Path(__file__).resolve().parents[2]


def _surface(package: str) -> set[str]:
    text = (ROOT / package / "__init__.py").read_text()
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return set()


def _cross_imports(package: str) -> list[tuple[str, str, str, list[str]]]:
    """(file, target package, first sub-module or '', imported names) for each import of
    another project package (the bottom layer ``common`` is public throughout)."""
    found = []
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts, names = node.module.split("."), [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] in PACKAGES and parts[0] != package:
                        sub = parts[1] if len(parts) > 1 else ""
                        found.append((str(path.relative_to(ROOT)), parts[0], sub, []))
                continue
            else:
                continue
            if parts[0] in PACKAGES and parts[0] != package:
                sub = parts[1] if len(parts) > 1 else ""
                found.append((str(path.relative_to(ROOT)), parts[0], sub, names))
    return found


def test_every_package_states_its_surface() -> None:
    for package in PACKAGES:
        assert _surface(package), f"{package}/__init__.py has no __all__"


def test_packages_use_each_other_only_through_their_surface() -> None:
    wrong = []
    for package in PACKAGES:
        for where, target, sub, names in _cross_imports(package):
            surface = _surface(target)
            if sub:
                ok = sub in surface or (names and all(n in surface for n in names))
            else:
                ok = all(n in surface for n in names)
            if not ok:
                wrong.append(f"{where}: {target}.{sub or ''} {names}")
    assert not wrong, "imports past a package's __all__:\n" + "\n".join(wrong)
