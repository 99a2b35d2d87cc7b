"""The demo's bank card through a running ``cuntong up`` (issue 20 in the demo):
SX-00001's card_read is decided by the HSM (the ARQC over the desk's nonce, the account from
the core), not by a supervisor's override; its pin_entry by the HSM against the core's PVV;
and the customer screen, in headless Chromium, shows and speaks the cloud's words after each
wrong PIN (还可尝试N次) and the lock notice after the third, which the core records.

Everything is the real thing ``scripts/demo.sh`` starts: the launcher keyed the pad and
issued the card, the customer is the PIN pad simulator typing what the demo's customer file
says (``customer_types``), the call goes through the desk and Janus, and the screen is the
agent's own.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from playwright.sync_api import sync_playwright

from cloud.workflow.cardcheck import LOCKED_TEXT, WRONG_PIN_TEXT
from cuntong import stack
from cuntong.demobank import DemoCard
from firmware_adapters.iccard.pcscd import SOCKET_ENV
from tests.integration.test_up_lifecycle import READY, _env, _up

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-background-networking", "--no-first-run",
         "--autoplay-policy=no-user-gesture-required"]  # fmt: skip
BUSINESS = "loan_repayment"  # card_read, pin_entry, e_signature: the card first


def _until(probe: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    """Poll with a generous deadline (a loaded machine), failing with the last value."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout}s; last {last!r}")


def _serves(kiosk: httpx.Client) -> bool:
    try:
        return kiosk.get("/state").status_code == 200
    except httpx.TransportError:
        return False


def _types(customer_file: Path, keys: str) -> None:
    """What the simulated customer types at the next PIN entry (the pad reads the file)."""
    body = json.loads(customer_file.read_text())
    customer_file.write_text(json.dumps({**body, "customer_types": keys}))


def test_the_demo_card_is_decided_by_the_hsm_and_the_screen_says_the_tries_left(
    tmp_path: Path,
) -> None:
    with _up(tmp_path, _env()) as up:
        text = up.out.read_text()
        assert READY in text
        assert "decided by the HSM and the core" in text, text
        api = re.search(r"terminals\s+(http://\S+)/api/v1/terminals", text).group(1)  # type: ignore[union-attr]
        screen = re.search(r"customer screen\s+(http://\S+)/", text).group(1)  # type: ignore[union-attr]
        customer_file = tmp_path / "cloud" / "demo-card.json"
        assert oct(customer_file.stat().st_mode & 0o777) == "0o600"
        customer = json.loads(customer_file.read_text())
        pin = customer["pin"]
        assert customer["customer_types"] == pin and customer["account"] == "DEMO-0001"
        card_file = tmp_path / "bank" / "card.json"
        assert oct(card_file.stat().st_mode & 0o777) == "0o600"
        assert "imk" not in json.loads(card_file.read_text())  # the card's key, not the issuer's
        # nothing the launcher printed or logged holds the PIN
        assert pin not in text
        for log in tmp_path.rglob("*.log"):
            assert pin not in log.read_text(errors="replace"), log

        passwords = json.loads((tmp_path / "cloud" / "demo-accounts.json").read_text())
        with (
            httpx.Client(base_url=api, timeout=30) as teller,
            httpx.Client(base_url=screen, timeout=30) as kiosk,
            sync_playwright() as pw,
        ):
            login = {"username": "teller1", "password": passwords["teller1"]}
            r = teller.post("/api/v1/auth/login", json=login)
            assert r.status_code == 200, r.text
            teller.headers["Authorization"] = f"Bearer {r.json()['token']}"
            r = teller.post("/api/v1/teller/me/state", json={"state": "available"})
            assert r.status_code == 204, r.text

            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page()
            heard: list[str] = []
            page.on("response", lambda resp: heard.append(resp.url)
                    if "/voice/" in resp.url and resp.status == 200 else None)  # fmt: skip
            # The agent serves its screen once it has started (after READY, under load).
            _until(lambda: _serves(kiosk), "customer screen served")
            page.goto(screen + "/")

            # The terminal's link is up (its screen may serve before it: an ask then is
            # dropped as "offline"), as the fleet sees it.
            ops = {"username": "ops", "password": passwords["ops"]}
            token = httpx.post(f"{api}/api/v1/auth/login", json=ops).json()["token"]
            fleet = {"Authorization": f"Bearer {token}"}
            _until(lambda: httpx.get(f"{api}/api/v1/terminals/SX-00001", headers=fleet)
                   .json().get("status") == "online", "SX-00001 online")  # fmt: skip
            # The customer asks for a teller; teller1 takes the call; the terminal joins.
            r = kiosk.post("/ask", json={"business": BUSINESS})
            assert r.status_code == 200, r.text
            sid = _until(lambda: teller.get("/api/v1/teller/me").json().get("offer"), "offer")
            r = teller.post(f"/api/v1/teller/sessions/{sid}/accept")
            assert r.status_code == 200, r.text
            _until(lambda: kiosk.get("/state").json().get("phase") == "in_call", "in call")
            url = f"/api/v1/workflow/{sid}"
            r = teller.post(f"{url}/start", json={"business": BUSINESS})
            assert r.status_code == 201, r.text

            # card_read: the card in the demo reader answers an ARQC over the desk's nonce;
            # the cloud passes it on the HSM's verification and names the core's account.
            # loan_repayment moves money: the amount first, the card's cryptogram covers it
            r = teller.post(f"{url}/steps/card_read/ask")
            assert r.status_code == 422 and "amount" in r.text, r.text
            r = teller.post(f"{url}/steps/card_read/ask", json={"amount_fen": 12_345})
            assert r.status_code == 200, r.text
            wf = _until(lambda: (w := teller.get(url).json())["next_step"] != "card_read" and w,
                        "card_read decided")  # fmt: skip
            (card,) = wf["done"]
            assert card["step"] == "card_read" and card["passed"], card
            assert card["actor"] == "terminal:SX-00001", card  # not a supervisor's override
            assert "override" not in card["detail"], card
            assert card["detail"]["arqc_verified"] is True, card
            assert card["detail"]["account"] == "DEMO-0001", card
            assert card["detail"]["card_masked"] == customer["card"], card
            assert card["detail"]["amount_fen"] == 12_345, card

            # Three wrong PINs: the screen shows and speaks the tries left, then the lock.
            _types(customer_file, "1" + pin[1:] if pin[0] != "1" else "2" + pin[1:])
            for expected in (WRONG_PIN_TEXT.format(left=2), WRONG_PIN_TEXT.format(left=1),
                             LOCKED_TEXT):  # fmt: skip
                r = teller.post(f"{url}/steps/pin_entry/ask")
                assert r.status_code == 200, r.text
                page.wait_for_function(
                    "t => document.getElementById('message').textContent === t",
                    arg=expected,
                    timeout=120_000,
                )
                said = kiosk.get("/state").json()["voice"]
                assert said["text"] == expected, said
                # (the sync API hands events over only while it runs: wait in the page)
                deadline = time.monotonic() + 120
                while not any(u.endswith(said["audio"]) for u in heard):
                    assert time.monotonic() < deadline, (expected, said, heard)
                    page.wait_for_timeout(300)
            browser.close()

            core_dir = tmp_path / "corebank"
            core_url = re.search(r"core simulator\s+(http://\S+)", text).group(1)  # type: ignore[union-attr]
            secret = (core_dir / "core.secret").read_text().strip()
            account = httpx.get(f"{core_url}/v1/accounts/DEMO-0001",
                                headers={"Authorization": f"Bearer {secret}"}).json()  # fmt: skip
            assert account["locked"] is True and account["pin_failures"] == 3, account
            assert teller.get(url).json()["next_step"] == "pin_entry"  # the step never passed

        # Killed outright (SIGKILL: no handler runs, the kernel has to end its servers):
        # none of its children outlives it, the private pcscd and the card emulator
        # included. (Ctrl-C: test_up_lifecycle.py, on the same demo; one `up` less.)
        family = up.family()
        names = {p.name() for p in family}
        assert {"mosquitto", "victoria-metrics", "janus", "pcscd"} <= names, names
        os.kill(up.proc.pid, signal.SIGKILL)
        up.proc.wait(10)
        _gone, alive = psutil.wait_procs(family, timeout=15)
        assert not alive, [(p.pid, p.name()) for p in alive]


def test_without_a_pcsc_reader_the_banner_says_why_and_the_steps_wait_for_an_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pcscd or vpcd missing: the card reader is not started, nothing else breaks, and the
    banner says why and that a supervisor's override is what remains."""
    monkeypatch.setattr(stack, "VPCD_DRIVER", tmp_path / "no-libifdvpcd.so")
    up = stack.Stack(tmp_path)
    up.demo_card = DemoCard("6217***********1234", "DEMO-0001", tmp_path / "c.json", True)
    env = up.start_card_reader("SX-00001")
    assert up.supervisor.children == []  # no card reader child to restart forever
    assert env == {SOCKET_ENV: str(tmp_path / "pcscd" / "run" / "pcscd.comm")}
    lines = up._card_lines()
    assert "off: no PC/SC card reader" in lines and "apt-get install" in lines, lines
    assert "supervisor's override" in lines, lines
