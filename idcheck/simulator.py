"""A simulated bank gateway to the citizen identity service, as a real HTTP process.

    python -m idcheck.simulator --port 8790 --identities ids.json --key-file key.txt

`ids.json` is a list of {"id_number", "name", "status"} ("normal" or "deceased"). For a signed
POST /v1/verify {"session_id", "name", "id_number"} it answers, signed with the same key:

    number not in the file        -> 库中无此号      status deceased  -> 已死亡
    name differs                  -> 不一致          otherwise        -> 一致

with a fresh query id and the session id echoed. It refuses (401) a bad signature, a stale
timestamp and a replayed nonce, and (400) a body that lacks a field, naming it.
POST /admin/mode {"mode": "up" | "down" | "hang"} switches to answering 503, or to holding
every request for --hang-s seconds before answering 503 — the outages the client must bound.
Loopback only; a test and demo stand-in, not the gateway's real protocol (docs/identity.md).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from idcheck import signing

PATH = "/v1/verify"
MODES = ("up", "down", "hang")


class Gateway:
    """The simulator's state: identities, key, seen nonces and the current mode."""

    def __init__(self, identities: list[dict[str, str]], key: bytes, hang_s: float) -> None:
        self.identities = {i["id_number"]: i for i in identities}
        self.key = key
        self.hang_s = hang_s
        self.mode = "up"
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()

    def verify(self, headers: Any, body: bytes, now: float) -> tuple[int, dict[str, str]]:
        try:
            signed = signing.Signed.from_headers(dict(headers.items()))
        except ValueError as err:
            return 401, {"error": "unsigned", "detail": str(err)}
        problem = signing.check(self.key, signed, "POST", PATH, body, now)
        if problem is not None:
            return 401, {"error": problem, "detail": f"key id {signed.key_id}"}
        with self.lock:
            self.seen = {n: t for n, t in self.seen.items() if now - t <= signing.MAX_SKEW_S}
            if signed.nonce in self.seen:
                return 401, {"error": "replayed_nonce", "detail": signed.nonce}
            self.seen[signed.nonce] = now
        try:
            query = json.loads(body)
            fields = {k: query[k] for k in ("session_id", "name", "id_number")}
        except (ValueError, KeyError, TypeError) as err:
            return 400, {
                "error": "bad_request",
                "detail": f"body needs session_id, name, id_number: missing {err}",
            }
        if fields["session_id"] != signed.session_id:
            return 400, {"error": "session_mismatch", "detail": "body and signed session differ"}
        person = self.identities.get(fields["id_number"])
        if person is None:
            result = "库中无此号"
        elif person.get("status") == "deceased":
            result = "已死亡"
        elif person["name"] != fields["name"]:
            result = "不一致"
        else:
            result = "一致"
        return 200, {
            "query_id": uuid.uuid4().hex,
            "session_id": fields["session_id"],
            "result": result,
        }


def handler_for(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep names out of logs
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if self.path == "/admin/mode":
                mode = json.loads(body or b"{}").get("mode")
                if mode not in MODES:
                    return self._send(400, {"error": "bad_mode", "detail": f"mode in {MODES}"})
                gateway.mode = mode
                return self._send(200, {"mode": mode})
            if self.path != PATH:
                return self._send(404, {"error": "not_found", "detail": self.path})
            if gateway.mode == "hang":
                time.sleep(gateway.hang_s)
            if gateway.mode != "up":
                return self._send(503, {"error": "service_unavailable", "detail": "simulated"})
            status, answer = gateway.verify(self.headers, body, time.time())
            self._send(status, answer, sign=status == 200)

        def _send(self, status: int, obj: dict[str, str], sign: bool = False) -> None:
            data = json.dumps(obj, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json; charset=utf-8")
            self.send_header("content-length", str(len(data)))
            if sign:
                signed = signing.sign(
                    gateway.key,
                    "gateway",
                    "ANSWER",
                    PATH,
                    int(time.time()),
                    uuid.uuid4().hex,
                    obj["session_id"],
                    data,
                )
                for name, value in signed.headers().items():
                    self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--identities", type=Path, required=True, help="JSON list of people")
    parser.add_argument("--key-file", type=Path, required=True, help="shared HMAC key")
    parser.add_argument("--mode", choices=MODES, default="up")
    parser.add_argument("--hang-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    gateway = Gateway(
        json.loads(args.identities.read_text(encoding="utf-8")),
        args.key_file.read_bytes().strip(),
        args.hang_s,
    )
    gateway.mode = args.mode
    server = ThreadingHTTPServer((args.host, args.port), handler_for(gateway))
    server.daemon_threads = True
    print(f"identity gateway simulator on {args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
