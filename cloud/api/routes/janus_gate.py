"""/media/janus/{node}/...: participants' Janus API, through the cloud (``JanusGate``).

Point a node's ``public_url`` (``janus_public_url`` for janus-1) at
``https://<cloud>/media/janus/<node>`` and every grant carries it: terminals and teller
browsers then signal through here, the gate refuses and audits a join outside the
grant's room, and everything else is passed to the node unchanged. Janus's own token,
PIN and access-list checks stay in force, so this route needs no login: the Janus token
is the credential, as on Janus itself. The admin API is never reachable here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from cloud.api.deps import Services
from cloud.sessions.gate import JanusGate

router = APIRouter(prefix="/media/janus", tags=["media"], include_in_schema=False)


def gate(s: Services) -> JanusGate:
    if s.desk is None:
        raise HTTPException(503, "the teller desk is not running (no media server configured)")
    return s.desk.gate


Gate = Annotated[JanusGate, Depends(gate)]


async def _forward(gate: JanusGate, node: str, path: str, request: Request) -> Response:
    body = await request.body() if request.method == "POST" else b""
    answer = await gate.handle(node, path, request.method, request.url.query, body)
    return Response(answer.content, answer.status, media_type=answer.content_type)


@router.api_route("/{node}", methods=["GET", "POST"])
async def api_root(node: str, request: Request, gate: Gate) -> Response:
    return await _forward(gate, node, "", request)


@router.api_route("/{node}/{path:path}", methods=["GET", "POST"])
async def api_path(node: str, path: str, request: Request, gate: Gate) -> Response:
    return await _forward(gate, node, path, request)
