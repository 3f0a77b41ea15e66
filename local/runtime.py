"""Invoking a function's real handler the way Lambda does: loaded once per
"container" (cold start on first use), called with a JSON event and a
context object, one invocation per container at a time."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from local.template import Function


class LambdaContext:
    """The attributes of the Lambda context object that handlers use."""

    def __init__(self, function: Function, stopping: threading.Event | None = None) -> None:
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function.name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + function.timeout
        self._stopping = stopping or threading.Event()

    def get_remaining_time_in_millis(self) -> int:
        # A stopping emulator tells long runs (the drain) their time is up,
        # so they finish their batch and return instead of holding shutdown.
        if self._stopping.is_set():
            return 0
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _container_thread(loops: list[asyncio.AbstractEventLoop]) -> None:
    # Handlers such as Mangum expect an event loop in the invoking thread.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loops.append(loop)


class LocalFunction:
    """One function's handler, invoked on a small pool of worker threads
    (each thread plays one warm container)."""

    def __init__(
        self,
        function: Function,
        *,
        concurrency: int = 4,
        after_load: Callable[[], None] | None = None,
    ) -> None:
        self.function = function
        # Run once the handler is loaded (cold start): the stack's console
        # format for the loggers the module set up.
        self._after_load = after_load
        self._loops: list[asyncio.AbstractEventLoop] = []
        self._pool = ThreadPoolExecutor(
            max_workers=concurrency,
            initializer=_container_thread,
            initargs=(self._loops,),
            thread_name_prefix=f"lambda-{function.name}",
        )
        self._handler: Any = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def _load(self) -> Any:
        with self._lock:
            if self._handler is None:
                module_name, _, attr = self.function.handler.rpartition(".")
                path = self.function.code_uri / (module_name.replace(".", "/") + ".py")
                spec = importlib.util.spec_from_file_location(
                    f"aurora_function_{self.function.name}", path
                )
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {path}")
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                self._handler = getattr(module, attr)
                if self._after_load is not None:
                    self._after_load()
        return self._handler

    def _call(self, event_json: str) -> Any:
        handler = self._load()
        result = handler(json.loads(event_json), LambdaContext(self.function, self._stopping))
        return json.loads(json.dumps(result))  # what Lambda would serialise

    def invoke(self, event: dict[str, Any]) -> Any:
        """Invoke and wait (from any thread but the event loop's)."""
        return self._pool.submit(self._call, json.dumps(event)).result()

    async def ainvoke(self, event: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._call, json.dumps(event))

    def close(self) -> None:
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for loop in self._loops:
            loop.close()
