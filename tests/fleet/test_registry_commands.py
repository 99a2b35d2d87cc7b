"""Registry, groups, commands and shadows end to end: real broker, cloud process, agents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.fleet.conftest import Agents
from tests.helpers import OPERATOR, CloudProcess, create_account, eventually
from tests.integration.agents import new_id


async def _online(http: httpx.AsyncClient, *tids: str) -> bool:
    r = await http.get("/api/v1/fleet/terminals", params={"status": "online"})
    return set(tids) <= {t["id"] for t in r.json()["items"]}


async def _final(http: httpx.AsyncClient, cid: str) -> dict[str, Any] | None:
    cmd = (await http.get(f"/api/v1/fleet/commands/{cid}")).json()
    return cmd if cmd["state"] not in ("queued", "sent") else None


async def test_groups_select_by_region_tag_and_version(cloud: CloudProcess, agents: Agents) -> None:
    a, b, c = new_id("RA"), new_id("RB"), new_id("RC")
    await agents.start(a)
    await agents.start(b, county="渭滨区", hw_model="ZN-E200")
    await agents.start(c, province="甘肃省", city="天水市", county="秦州区")
    async with cloud.client() as http:
        await eventually(lambda: _online(http, a, b, c))
        assert (
            await http.put(f"/api/v1/fleet/terminals/{a}/tags", json={"tags": ["pilot"]})
        ).json()["tags"] == ["pilot"]
        await http.put(f"/api/v1/fleet/terminals/{b}/tags", json={"tags": ["pilot", "market"]})

        r = await http.get("/api/v1/fleet/terminals", params={"city": "宝鸡市", "tag": "pilot"})
        assert [t["id"] for t in r.json()["items"]] == sorted([a, b])
        r = await http.get("/api/v1/fleet/terminals", params={"hw_model": "ZN-E200"})
        assert [t["id"] for t in r.json()["items"]] == [b]
        r = await http.get("/api/v1/fleet/terminals", params={"version": "agent=0.0.0-none"})
        assert r.json()["total"] == 0

        q = {
            "name": "baoji-pilot",
            "kind": "query",
            "selector": {"city": "宝鸡市", "tags": ["pilot"]},
        }
        assert (await http.post("/api/v1/fleet/groups", json=q)).status_code == 201
        bad = {"name": "typo", "kind": "query", "selector": {"cty": "宝鸡市"}}
        assert (await http.post("/api/v1/fleet/groups", json=bad)).status_code == 422
        static = {"name": "gansu", "kind": "static", "members": [c]}
        assert (await http.post("/api/v1/fleet/groups", json=static)).status_code == 201
        members = (await http.get("/api/v1/fleet/groups/baoji-pilot/terminals")).json()
        assert members["terminals"] == sorted([a, b])
        # A saved query follows the fleet: untag one terminal and it leaves the group.
        await http.put(f"/api/v1/fleet/terminals/{b}/tags", json={"tags": []})
        members = (await http.get("/api/v1/fleet/groups/baoji-pilot/terminals")).json()
        assert members["terminals"] == [a]

        tree = (await http.get("/api/v1/fleet/regions")).json()
        provinces = {p["name"]: p for p in tree["children"]}
        assert provinces["陕西省"]["total"] >= 2 and provinces["甘肃省"]["online"] >= 1
        overview = (await http.get("/api/v1/fleet/overview")).json()
        assert overview["online"] >= 3 and "agent" in overview["versions"]


async def test_commands_to_a_group_are_answered_and_recorded(
    cloud: CloudProcess, agents: Agents, tmp_path: Path
) -> None:
    a, b = new_id("CA"), new_id("CB")
    agent_a = await agents.start(a)
    await agents.start(b)
    async with cloud.client() as http:
        await eventually(lambda: _online(http, a, b))
        await http.post(
            "/api/v1/fleet/groups", json={"name": "two", "kind": "static", "members": [a, b]}
        )
        sent = (
            await http.post("/api/v1/fleet/commands", json={"name": "ping", "group": "two"})
        ).json()
        assert sent["count"] == 2

        async def all_done() -> dict[str, Any] | None:
            p = (await http.get(f"/api/v1/fleet/commands/batches/{sent['batch']}")).json()
            return p if p["states"].get("succeeded") == 2 else None

        await eventually(all_done)
        lock = await http.post(
            "/api/v1/fleet/commands",
            json={"name": "lock_screen", "terminals": [a], "args": {"message": "维护中"}},
        )
        done = await eventually(lambda: _final(http, lock.json()["commands"][0]))
        assert done["state"] == "succeeded" and done["result"]["locked"] is True
        assert agent_a.mdm.screen == {"locked": True, "message": "维护中"}

        refused = await http.post("/api/v1/fleet/commands", json={"name": "wipe", "terminals": [a]})
        assert refused.status_code == 422  # destructive: needs confirm
        unknown = await http.post(
            "/api/v1/fleet/commands", json={"name": "format_c", "terminals": [a]}
        )
        assert unknown.status_code == 422
    # Every command is in the audit log under the operator who sent it.
    create_account(
        f"sqlite://{tmp_path / 'cloud.sqlite3'}", "aud", "auditor-password-1234", "auditor"
    )
    async with httpx.AsyncClient(base_url=cloud.url) as anyone:
        login = await anyone.post(
            "/api/v1/auth/login", json={"username": "aud", "password": "auditor-password-1234"}
        )
        entries = (
            await anyone.get(
                "/api/v1/audit",
                params={"actor": OPERATOR},
                headers={"Authorization": f"Bearer {login.json()['token']}"},
            )
        ).json()
    actions = {(e["action"], e["target"]) for e in entries}
    assert ("fleet_command:ping", "group:two") in actions
    assert ("fleet_command:lock_screen", a) in actions


async def test_command_to_offline_terminal_waits_for_it_or_expires(
    cloud: CloudProcess, agents: Agents
) -> None:
    back, gone = new_id("OB"), new_id("OG")
    await agents.start(back)
    async with cloud.client() as http:
        await eventually(lambda: _online(http, back))
        await agents.stop(back)
        r = await http.post(
            "/api/v1/fleet/commands", json={"name": "peripheral_selftest", "terminals": [back]}
        )
        waiting = r.json()["commands"][0]
        r = await http.post(
            "/api/v1/fleet/commands", json={"name": "ping", "terminals": [gone], "ttl_s": 1.5}
        )
        expiring = r.json()["commands"][0]
        await eventually(lambda: _final(http, expiring))
        assert (await http.get(f"/api/v1/fleet/commands/{expiring}")).json()["state"] == "expired"
        assert (await http.get(f"/api/v1/fleet/commands/{waiting}")).json()["state"] == "queued"

        await agents.start(back)  # the terminal returns: its queue is delivered
        done = await eventually(lambda: _final(http, waiting))
        assert done["state"] == "succeeded" and "results" in done["result"]


async def test_shadow_delta_reaches_terminal_and_drift_clears(
    cloud: CloudProcess, agents: Agents
) -> None:
    tid = new_id("SH")
    agent = await agents.start(tid)
    async with cloud.client() as http:
        await eventually(lambda: _online(http, tid))
        await agents.stop(tid)
        r = await http.patch(
            f"/api/v1/fleet/shadows/{tid}/desired",
            json={"telemetry_interval_s": 2.0, "screen": {"locked": True}},
        )
        assert r.json()["desired_version"] == 1 and r.json()["in_sync"] is False
        drift = (await http.get("/api/v1/fleet/shadows/drift")).json()
        assert [d["terminal_id"] for d in drift] == [tid]
        assert drift[0]["delta"] == {"telemetry_interval_s": 2.0, "screen": {"locked": True}}

        agent = await agents.start(tid)

        async def synced() -> dict[str, Any] | None:
            s = (await http.get(f"/api/v1/fleet/shadows/{tid}")).json()
            return s if s["in_sync"] else None

        s = await eventually(synced)
        assert s["reported"] == {
            "telemetry_interval_s": 2.0,
            "screen": {"locked": True, "message": ""},
        }
        assert s["reported_version"] == 1
        assert agent.telemetry_interval_s == 2.0 and agent.mdm.screen["locked"]
        assert (await http.get("/api/v1/fleet/shadows/drift")).json() == []
