"""Liveness and readiness: no token needed."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from api.errors import Unavailable, responses
from elevate.db import ping

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses=responses(503))
async def readyz(request: Request) -> Any:
    checks: dict[str, str] = {}
    try:
        # In a thread, bounded: a database that hangs must not stall the event loop (/healthz).
        await asyncio.wait_for(asyncio.to_thread(ping, request.app.state.engine), 5)
        checks["database"] = "ok"
    except (SQLAlchemyError, TimeoutError) as err:
        checks["database"] = f"unavailable: {type(err).__name__}"
    try:
        await request.app.state.temporal.check()
        checks["temporal"] = "ok"
    except Unavailable as err:
        checks["temporal"] = f"unavailable: {err.detail}"
    failed = [name for name, state in checks.items() if state != "ok"]
    if failed:
        detail = f"not ready: {', '.join(failed)} unavailable"
        return JSONResponse(
            {"error": "not_ready", "detail": detail, "checks": checks}, status_code=503
        )
    return {"status": "ready", "checks": checks}
