"""The customer screen, served by the agent on 127.0.0.1 (``CUNTONG_AGENT_SCREEN_PORT``).

A deliberately small HTTP/1.1 server on ``asyncio.start_server`` (no web framework in the
agent): the page and its modules (its own, and ``/ui/*``, the ones every page shares:
``common.web``), ``GET /state`` (what to show, from ``view.view``), a few
``POST`` actions (the customer's buttons), the spoken prompts (``GET /voice/<id>.wav``,
only for sentences a state handed out: ``edge.teller.voice``; ``/chime.wav`` before a
ring-back's call), and the two videos as MJPEG streams
(``multipart/x-mixed-replace``, which every browser shows in a plain ``<img>``): the
teller's received frames and the customer's own camera. Each connection carries one
request; a video stream lasts until the page goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from common import web
from common.aio import within
from common.errors import CuntongError
from edge.teller import prompts, view
from edge.teller.call import Phase
from edge.teller.client import TellerClient
from edge.teller.voice import Voice, VoiceError, chime

log = logging.getLogger("cuntong.teller.screen")

MAX_BODY = 256 * 1024  # a signature of a few thousand points fits easily
VIDEO_FPS = 8
BOUNDARY = "cuntongframe"
STATIC = {
    "/": ("screen.html", "text/html; charset=utf-8"),
    "/screen.js": ("screen.js", "text/javascript; charset=utf-8"),
    "/screen-i18n.js": ("screen-i18n.js", "text/javascript; charset=utf-8"),
    "/screen.css": ("screen.css", "text/css; charset=utf-8"),
}
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    409: "Conflict",
    413: "Too Large",
    503: "Unavailable",
}
#: sentences whose audio the server hands out; an old queue position falls out first
SPOKEN_LIMIT = 256


class HttpError(CuntongError, ValueError):
    """A request the customer screen's server answers with ``status`` (4xx)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
    """(method, path, body) of one request; HttpError on a malformed one."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _ = lines[0].split(" ", 2)
    except ValueError:
        raise HttpError(400, "bad request line") from None
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0") or 0)
    if length > MAX_BODY:
        raise HttpError(413, "body too large")
    body = await reader.readexactly(length) if length else b""
    return method.upper(), target.split("?", 1)[0], body


def response(status: int, body: bytes, ctype: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class Screen:
    """``async with Screen(client, media, port)``: serve the page while the block runs."""

    def __init__(
        self,
        client: TellerClient,
        media: Any,
        port: int,
        host: str = "127.0.0.1",
        locked: Callable[[], str | None] = lambda: None,
        voice: Voice | None = None,
        volume: Callable[[], int] = lambda: 80,
        timeouts: dict[str, dict[str, int]] = view.TIMEOUTS,
    ):
        self.client, self.media, self.locked = client, media, locked
        self.voice = voice or Voice(Path(tempfile.mkdtemp(prefix="cuntong-voice-")))
        self.volume = volume
        self.timeouts = timeouts
        self._spoken: OrderedDict[str, str] = OrderedDict()  # audio id -> sentence
        self._chime = chime()
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None
        self._closing = asyncio.Event()
        self._handlers: set[asyncio.Task[None]] = set()
        self._jpeg_cache: dict[str, tuple[Any, bytes]] = {}
        self.actions: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "/ask": self._ask,
            "/end": lambda body: self.client.end(),
            "/ring_back": lambda body: self.client.ring_back(),
            "/rate": self._rate,
            "/answer": self._answer,
            "/signature": self._signature,
            "/read_id": self._read_id,
            "/forget_id": lambda body: self._forget_id(),
        }

    async def __aenter__(self) -> Screen:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("customer screen on http://%s:%d/", self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Video streams end on their own at the next tick: a cancelled connection handler
        # would make asyncio's stream callback log an error.
        self._closing.set()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=2)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await within(self._server.wait_closed(), 2)

    # --- requests --------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        try:
            method, path, body = await read_request(reader)
            if method == "GET" and path.startswith("/video/"):
                await self._video(path, writer)
                return
            writer.write(await self._route(method, path, body))
            await writer.drain()
        except HttpError as err:
            writer.write(response(err.status, orjson.dumps({"error": str(err)})))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            with contextlib.suppress(ConnectionError):
                writer.close()

    async def _route(self, method: str, path: str, body: bytes) -> bytes:
        if method == "GET" and path in STATIC:
            name, ctype = STATIC[path]
            page = resources.files("edge.teller").joinpath("static", name).read_bytes()
            return response(200, page, ctype)
        if method == "GET" and path.startswith("/ui/"):
            shared = web.asset(path.removeprefix("/ui/"))  # a whitelist, as in the cloud
            if shared is None:
                raise HttpError(404, f"no {path}")
            return response(200, *shared)
        if method == "GET" and path == "/chime.wav":
            return response(200, self._chime, "audio/wav")
        if method == "GET" and path.startswith("/voice/") and path.endswith(".wav"):
            return await self._audio(path.removeprefix("/voice/").removesuffix(".wav"))
        if method == "GET" and path == "/state":
            return response(200, orjson.dumps(self._state()))
        action = self.actions.get(path)
        if method != "POST" or action is None:
            raise HttpError(404, f"no {method} {path}")
        try:
            args = orjson.loads(body or b"{}")
            if not isinstance(args, dict):
                raise ValueError("a JSON object is expected")
            if path == "/ask" and self.locked() is not None:
                raise ValueError("the terminal is locked")
            await action(args)
        except (ValueError, KeyError, TypeError) as err:
            raise HttpError(409, str(err)) from None
        return response(200, orjson.dumps(self._state()))

    def _state(self) -> dict[str, Any]:
        c = self.client
        state = view.view(
            c.call,
            c.paperwork,
            c.clock(),
            c.prompt,
            self.locked(),
            self.volume(),
            self.timeouts,
            c.step,
            c.id_shown,
        )
        steps = c.steps
        state["can_read_id"] = steps is not None and "id_card_read" in steps.handlers
        read = [state["id_read"]["said"]] if state["id_read"] else []
        for said in (state["voice"], *state["prompts"].values(), *read):
            self._spoken[said["audio"].removeprefix("/voice/").removesuffix(".wav")] = said["text"]
        while len(self._spoken) > SPOKEN_LIMIT:
            self._spoken.popitem(last=False)
        return state

    async def _audio(self, audio_id: str) -> bytes:
        sentence = self._spoken.get(audio_id)
        if sentence is None:
            raise HttpError(404, f"no prompt {audio_id!r}: ask /state for the current one")
        try:
            wav = await self.voice.wav(sentence)
        except VoiceError as err:
            log.error("prompt not synthesised: %s", err)
            raise HttpError(503, str(err)) from None
        self._spoken.move_to_end(audio_id)
        return response(200, wav, "audio/wav")

    async def _ask(self, args: dict[str, Any]) -> None:
        language = args.get("language", "cmn")
        if language not in prompts.LANGUAGE_CODES:
            raise ValueError(
                f"unknown language {language!r}: one of {sorted(prompts.LANGUAGE_CODES)}"
            )
        elderly = args.get("elderly", False)
        if not isinstance(elderly, bool):
            raise ValueError("'elderly' must be true or false")
        await self.client.ask(str(args["business"]), elderly=elderly, language=language)

    async def _read_id(self, args: dict[str, Any]) -> None:
        """先刷身份证: read the card now; the answer's state says what was read."""
        if self.locked() is not None:
            raise ValueError("the terminal is locked")
        await self.client.read_id_first()

    async def _forget_id(self) -> None:
        """The customer left the menu: what their card left here is dropped."""
        if self.client.call.phase in (Phase.IDLE, Phase.RATING):
            self.client.call_over()

    async def _rate(self, args: dict[str, Any]) -> None:
        score = args.get("score")
        await self.client.rate(int(score) if score is not None else None)

    async def _answer(self, args: dict[str, Any]) -> None:
        if not isinstance(args.get("values"), dict):
            raise ValueError("values must be an object")
        self.client.paperwork.answer(str(args["form_id"]), args["values"])

    async def _signature(self, args: dict[str, Any]) -> None:
        strokes = args["strokes"]
        if not isinstance(strokes, list):
            raise ValueError("strokes must be a list")
        self.client.paperwork.signature(
            str(args["form_id"]), int(args["width"]), int(args["height"]), strokes
        )

    # --- video -----------------------------------------------------------------------

    def _frame(self, which: str) -> bytes | None:
        """The latest frame of one view as JPEG; encoded once per new frame, not per viewer."""
        from edge.teller import jpeg

        if which == "teller":
            peer = self.client.peer
            frame = getattr(getattr(peer, "incoming", None), "frame", None)
        else:
            frame = self.media.latest() if self.media is not None else None
        if frame is None:
            return None
        cached = self._jpeg_cache.get(which)
        if cached is not None and cached[0] is frame:
            return cached[1]
        still = jpeg.encode_rgb(frame) if which == "self" else jpeg.encode_frame(frame)
        self._jpeg_cache[which] = (frame, still)
        return still

    async def _video(self, path: str, writer: asyncio.StreamWriter) -> None:
        which = path.removeprefix("/video/").split(".")[0]
        if which not in ("teller", "self"):
            raise HttpError(404, f"no video {which!r}")
        if path.endswith(".jpg"):  # one still frame
            still = await asyncio.to_thread(self._frame, which)
            if still is None:
                raise HttpError(404, "no frame yet")
            writer.write(response(200, still, "image/jpeg"))
            await writer.drain()
            return
        writer.write(
            (
                "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nConnection: close\r\n"
                f"Content-Type: multipart/x-mixed-replace; boundary={BOUNDARY}\r\n\r\n"
            ).encode()
        )
        # Every tick, changed or not: browsers show a part once the next one begins.
        while not self._closing.is_set():
            still = await asyncio.to_thread(self._frame, which)
            if still is not None:
                writer.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(still)}\r\n\r\n".encode()
                    + still
                    + b"\r\n"
                )
                await writer.drain()
            await asyncio.sleep(1 / VIDEO_FPS)
