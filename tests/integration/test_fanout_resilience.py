"""A replica's subscriber survives what it did not expect."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect

from aurora.keyspace import REVOCATIONS_CHANNEL
from tests.conftest import on_single_and_cluster, plain_client
from tests.support.fanout import (
    eventually,
    receive_json,
    replica,
    settle,
    token_for,
)


async def test_an_unexpected_error_in_the_subscriber_restarts_it_and_chat_goes_on(settings):
    async with replica(settings) as (url, server):
        async with connect(f"{url}/?token={token_for(settings, 'alice')}") as alice:
            await settle()
            subscriber = server.subscriber
            handle, failures = subscriber._revocations.notice, []

            def broken_once(data):
                if not failures:
                    failures.append(data)
                    raise RuntimeError("a bug in a notice handler")
                return handle(data)

            subscriber._revocations.notice = broken_once
            publisher = plain_client(settings.redis_url)
            publisher.publish(REVOCATIONS_CHANNEL, json.dumps({"user_id": "nobody"}))
            publisher.close()
            await eventually(lambda: failures, "the notice never reached the handler")
            await asyncio.wait_for(subscriber._connected.wait(), 5)  # the subscriber is back

            await alice.send(json.dumps({"text": "still delivered"}))
            assert (await receive_json(alice))["text"] == "still delivered"


@on_single_and_cluster
async def test_a_message_published_while_the_subscriber_is_down_is_replayed(settings):
    """Even in a room where nothing had been said yet."""
    async with replica(settings) as (url, server):
        async with connect(f"{url}/?token={token_for(settings, 'alice')}") as alice:
            await settle()
            subscriber = server.subscriber
            gate = asyncio.Event()
            reconnect = subscriber._connect

            async def held_reconnect(hub):
                await gate.wait()
                await reconnect(hub)

            subscriber._connect = held_reconnect
            for link in list(subscriber._links.values()):  # the subscriber loses Redis
                await link.pubsub.connection.disconnect()
            await eventually(lambda: not subscriber.connected, "the subscriber did not notice")

            await alice.send(json.dumps({"text": "said while nobody listened"}))
            await asyncio.sleep(0.3)  # stored and published to no subscriber of ours
            gate.set()
            assert (await receive_json(alice))["text"] == "said while nobody listened"
