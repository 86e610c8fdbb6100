"""The application as ``medvault serve`` runs it, plus two bare routes for the API benchmark.

``PUT /_bench/echo`` reads and discards the body (what the server itself costs per byte);
``PUT /_bench/bridge`` sends the body through the upload bridge (:func:`api.uploads.store_streamed`)
to a worker thread that reads it in intake-sized chunks and discards them (what the bridge adds);
``GET /_bench/zeros?size=`` streams zeros. Run with ``uvicorn --factory
tests.perf.bench_app:create_bench_app``; ``MEDVAULT_BENCH_TUNE_MALLOC=1`` applies
:func:`infra.malloc.tune_malloc` first, as ``medvault serve`` does.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import BinaryIO

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from api.app import create_app
from api.uploads import raw_body, store_streamed
from infra.malloc import tune_malloc
from infra.wiring import Runtime

CHUNK = 1 << 20
_ZEROS = bytes(CHUNK)


def create_bench_app() -> FastAPI:
    if os.environ.get("MEDVAULT_BENCH_TUNE_MALLOC") == "1":
        tune_malloc()
    app = create_app()

    @app.put("/_bench/echo", include_in_schema=False)
    async def echo(request: Request) -> dict[str, int]:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
        return {"received": received}

    @app.put("/_bench/bridge", include_in_schema=False)
    async def bridge(request: Request) -> dict[str, int]:
        runtime: Runtime = request.app.state.runtime
        limits = runtime.intake_limits

        def discard(source: BinaryIO) -> int:
            received = 0
            while chunk := source.read(limits.chunk_size):
                received += len(chunk)
            return received

        return {"received": await store_streamed(raw_body(request), limits=limits, store=discard)}

    @app.get("/_bench/zeros", include_in_schema=False)
    async def zeros(size: int) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            remaining = size
            while remaining > 0:
                piece = _ZEROS[: min(CHUNK, remaining)]
                remaining -= len(piece)
                yield piece

        return StreamingResponse(chunks(), headers={"Content-Length": str(size)})

    return app
