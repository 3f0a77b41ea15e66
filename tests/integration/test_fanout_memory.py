"""A replica lets go of a connection once it closes: nothing that runs
periodically (keepalive rounds, revocation sweeps) keeps it alive, and its
connection slot goes back without the session waiting for Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import weakref

from websockets.asyncio.client import connect

from tests.support.fanout import receive_json, replica, send_json, token_for


async def test_a_closed_connection_is_freed_though_pinged_and_swept(settings):
    # Long revocation interval: after the sweep we ask for, the next one is far off.
    quick = dataclasses.replace(settings, ping_interval_seconds=1, revocation_check_seconds=300)
    async with replica(quick) as (url, server):
        ws = await connect(url)
        await send_json(ws, {"type": "auth", "token": token_for(quick, "alice")})
        assert (await receive_json(ws))["type"] == "ready"
        (session,) = server.users.of("id-alice")
        held = weakref.ref(session.connection)
        del session
        await asyncio.sleep(1.5)  # in a keepalive round: pinged, its pong awaited
        server.revocations.check_all_soon()  # and in a revocation sweep
        await asyncio.sleep(0.3)
        await ws.close()
        for _ in range(50):  # until the session has ended
            if not server.limit.held and "id-alice" not in server.users:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        gc.collect()
        assert held() is None, gc.get_referrers(held())


async def test_a_slot_freed_by_a_close_is_free_for_the_next_connection(settings):
    capped = dataclasses.replace(settings, max_connections_per_user=1)
    async with replica(capped) as (url, server):
        for _ in range(3):  # each one closes, its slot goes back in a batch, the next gets it
            ws = await connect(url)
            await send_json(ws, {"type": "auth", "token": token_for(capped, "alice")})
            assert (await receive_json(ws))["type"] == "ready"
            await ws.close()
            for _ in range(100):
                if not server.limit.held and server.limit._flushing is None:
                    break
                await asyncio.sleep(0.05)
