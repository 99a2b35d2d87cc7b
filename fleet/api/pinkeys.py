"""Rotate every keyed PIN pad's working key now, rather than at the next scheduled beat."""

from __future__ import annotations

from fastapi import APIRouter

from fleet.api.deps import Operator, PinKeys, Readers, Who, audited

router = APIRouter(prefix="/fleet/pin-keys", tags=["fleet pin keys"], dependencies=Readers)


@router.post("/rotate", status_code=202, dependencies=Operator)
async def rotate_now(rotation: PinKeys, who: Who) -> dict[str, bool]:
    """Wake the rotation job (a suspected compromise, a new terminal keyed today)."""
    await audited(who, "pin_key_rotation_requested", "all")
    rotation.wake.set()
    return {"requested": True}
