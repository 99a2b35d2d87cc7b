"""Commands survive the leading API replica's death (issue 17, "commands survive"), in
secured mode: ``cuntong up --api-replicas 2`` (an mTLS broker with dynamic security, two
replicas, HAProxy, a real agent).

- A reply that arrives while the leader dies: the agent is frozen (SIGSTOP) while the leader
  sends it a ``ping``, the leader is SIGKILLed and the agent thawed at once, so it replies
  before any standby can have taken the lease. The command must end ``succeeded`` (before,
  the reply went only to the dead leader's sender session and the command timed out).
- A command the leader marked sent and died before publishing (the ``sender-publish``
  failpoint freezes it there; then it is SIGKILLed): the new leader sends it again and it
  ends ``succeeded`` (before, it timed out).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

from tests.ha.uprig import Launched, listener, up_replicas, wait


@dataclasses.dataclass
class Up(Launched):
    """The launched stack, an operator's headers and the one terminal's id."""

    ops: dict[str, str] = dataclasses.field(default_factory=dict)
    tid: str = ""

    def send(self, n: int) -> str:
        body = {"name": "ping", "terminals": [self.tid], "args": {"n": n}}
        r = httpx.post(f"{self.api}/api/v1/fleet/commands", json=body, headers=self.ops, timeout=10)
        assert r.status_code == 201, r.text
        return str(r.json()["commands"][0])

    def state_of(self, cid: str) -> str | None:
        """From any replica that answers at once (HAProxy may still send a request to one
        that is frozen, and wait on it)."""
        for port in self.ports:
            with contextlib.suppress(httpx.HTTPError):
                url = f"http://127.0.0.1:{port}/api/v1/fleet/commands/{cid}"
                r = httpx.get(url, headers=self.ops, timeout=2)
                if r.status_code == 200:
                    return str(r.json()["state"])
        return None

    def final(self, cid: str, within_s: float = 60) -> str:
        return str(
            wait(lambda: (s := self.state_of(cid)) not in (None, "sent", "queued") and s, within_s)
        )


@contextlib.contextmanager
def _up(tmp: Path, **env_extra: str) -> Iterator[Up]:
    with up_replicas(tmp, **env_extra) as launched:
        try:
            ops = launched.login("ops")

            def online() -> str | None:
                r = httpx.get(
                    f"{launched.api}/api/v1/terminals", params={"status": "online"}, headers=ops
                )
                items = r.json()["items"] if r.status_code == 200 else []
                return str(items[0]["id"]) if len(items) == 1 else None

            up = Up(**vars(launched), ops=ops, tid=wait(online))
            wait(up.leader_port)
            yield up
            launched.stop()
        finally:
            with contextlib.suppress(psutil.Error, ProcessLookupError):  # nothing left frozen
                for pid in launched.pids("cuntong"):
                    os.kill(pid, signal.SIGCONT)


def test_a_reply_arriving_while_the_leader_dies_is_recorded_by_the_other_replica(
    tmp_path: Path,
) -> None:
    with _up(tmp_path) as up:
        leader = up.leader_port()
        assert up.final(up.send(1), 30) == "succeeded"  # the path works before anything dies
        # The agent frozen: the leader sends the command, its reply cannot come yet.
        [agent] = up.pids("cuntong", "agent")
        os.kill(agent, signal.SIGSTOP)
        cid = up.send(2)
        wait(lambda: up.state_of(cid) == "sent", 30)
        # The leader dies; the agent thaws at once and replies while nobody leads.
        os.kill(listener(leader), signal.SIGKILL)  # type: ignore[arg-type]
        os.kill(agent, signal.SIGCONT)
        assert up.final(cid) == "succeeded", "the reply was lost in the takeover"
        assert wait(lambda: up.leader_port() not in (None, leader), 60)


def test_a_command_marked_sent_by_a_leader_that_died_before_publishing_is_sent_again(
    tmp_path: Path,
) -> None:
    # Every replica stops itself (once) between marking commands sent and publishing them.
    with _up(tmp_path, CUNTONG_FAILPOINTS="sender-publish") as up:
        leader = up.leader_port()
        pid = listener(leader)  # type: ignore[arg-type]
        cid = up.send(1)

        def frozen(p: int) -> bool:
            with contextlib.suppress(psutil.Error):
                return psutil.Process(p).status() == psutil.STATUS_STOPPED
            return False

        wait(lambda: frozen(pid), 30)
        assert up.state_of(cid) == "sent"
        os.kill(pid, signal.SIGKILL)  # died with the command marked sent, never published

        def settled() -> str | None:
            # The new leader stops at the same failpoint when it sends again: thaw it (and
            # any replica the launcher restarted, should it lead) so it publishes.
            for p in up.pids("cuntong", "api"):
                if frozen(p):
                    os.kill(p, signal.SIGCONT)
            s = up.state_of(cid)
            return s if s not in (None, "sent", "queued") else None

        assert wait(settled, 60) == "succeeded", "the unpublished command was not sent again"
        log = "".join(p.read_text(errors="replace") for p in tmp_path.glob("api*.log"))
        assert "commands awaiting a reply at the takeover: sending again" in log
