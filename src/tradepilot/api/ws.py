"""``/ws/events``: the journal's events as they happen.

Query parameters: ``after_seq`` (resume: events with a larger sequence number only,
so a client that reconnects with the last ``seq`` it saw misses nothing and gets
nothing twice), ``kinds`` (comma-separated event kinds), ``key`` (the API key, for
browsers; a header works too). Each message is one event as JSON with its ``seq``.
A key without the ``read`` scope is refused with close code 4401/4403.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from tradepilot.api.auth import Authenticator
from tradepilot.api.source import SessionView

POLL_S = 0.2
BATCH = 500


def build_ws_router(view: SessionView, auth: Authenticator) -> APIRouter:
    router = APIRouter()

    @router.websocket("/ws/events")
    async def events(websocket: WebSocket) -> None:
        params = websocket.query_params
        secret = params.get("key") or websocket.headers.get("x-api-key")
        header = websocket.headers.get("authorization", "")
        if not secret and header.lower().startswith("bearer "):
            secret = header[7:].strip()
        # accept first, so that a refusal reaches the client as a close code and reason
        await websocket.accept()
        try:
            key = auth.identify(secret)
        except HTTPException:
            await websocket.close(code=4401, reason="a valid API key is required")
            return
        if not key.allows("read"):
            await websocket.close(code=4403, reason="the key lacks the 'read' scope")
            return
        try:
            after = int(params.get("after_seq", "0"))
            if not 0 <= after <= 2**62:
                raise ValueError
        except ValueError:
            await websocket.close(code=4422, reason="after_seq must be a non-negative integer")
            return
        kinds = [k for k in params.get("kinds", "").split(",") if k] or None

        async def pump() -> None:
            nonlocal after
            while True:
                rows: list[dict[str, Any]] = await run_in_threadpool(
                    view.rows_after, after, kinds, BATCH
                )
                for row in rows:
                    await websocket.send_json(row)
                    after = row["seq"]
                if len(rows) < BATCH:
                    await asyncio.sleep(POLL_S)

        async def until_closed() -> None:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass  # clients have nothing to say; anything they send is ignored

        tasks = {asyncio.create_task(pump()), asyncio.create_task(until_closed())}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                    await task

    return router
