"""The HTTP API and the page (FastAPI): ``POST /generate``, ``POST /tokenize``, ``GET /models``,
``GET /health``, the page at ``/`` and its files under ``/static/``. The OpenAPI description is at
``/openapi.json``; the interactive ``/docs`` page is off, because it loads its scripts from a CDN.

Every error is a JSON object ``{"error": message}``: 400 for a bad request (the CLI's message), 404 for an
unknown model, 413 for a body that is too large, 503 when the model's queue is full, 504 when a request
waited past its timeout, 500 for a bug (logged with its traceback on the server, never sent).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from attngan_cli import __version__
from attngan_cli.apps.serve.engine import (
    Batcher,
    Busy,
    ServedModel,
    ServeSettings,
    TimedOut,
    check_request,
    tokens,
)
from attngan_cli.apps.serve.render import render
from attngan_cli.core.errors import AttnGANError, InputError

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 64 * 1024  # bytes of a request body


class GenerateBody(BaseModel):
    caption: str = Field(description="The text to draw (the CLI's tokenization; unknown words are dropped).")
    model: str | None = Field(None, description="A name from GET /models (default: the first).")
    seed: int = Field(0, description="The seed of `attngan sample --seed`: the same seed gives the same images.")
    n: int = Field(1, description="Images to generate (at most the server's --max-n).")
    attention: bool = Field(True, description="Include the attention data (ranked words, maps).")
    figure: bool = Field(True, description="Include the paper's attention figure (a PNG) per sample.")


class TokenizeBody(BaseModel):
    caption: str
    model: str | None = None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(models: Sequence[ServedModel], settings: ServeSettings) -> FastAPI:
    """The application serving ``models`` (loaded already; the first is the default). Each model's batcher
    starts with the application and stops when it shuts down."""
    if not models:
        raise InputError("no model to serve: give at least one -c CHECKPOINT")
    by_name = {m.name: m for m in models}
    batchers: dict[str, Batcher] = {}
    started = time.time()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for m in models:
            batchers[m.name] = Batcher(m, settings)
        try:
            yield
        finally:
            for b in batchers.values():
                b.close()
            batchers.clear()

    app = FastAPI(title="attngan serve", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Images and attention maps from text with trained attngan checkpoints.")
    app.state.batchers = batchers

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _bug(_request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error", exc_info=exc)
        return _error(500, f"internal error ({type(exc).__name__}); the server log has the details")

    @app.middleware("http")
    async def _limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            return _error(413, f"request body of {length} bytes; at most {MAX_BODY} are accepted")
        return await call_next(request)

    def pick(name: str | None) -> ServedModel:
        if name is None or name == "":
            return models[0]
        if name not in by_name:
            raise _NotFound(f"no model {name!r}; this server has: {', '.join(by_name)}")
        return by_name[name]

    @app.exception_handler(_NotFound)
    async def _not_found(_request: Request, exc: _NotFound) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(AttnGANError)
    async def _user_error(_request: Request, exc: AttnGANError) -> JSONResponse:
        status = 503 if isinstance(exc, Busy) else 504 if isinstance(exc, TimedOut) else 400
        return _error(status, str(exc))

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health", summary="Liveness and queue lengths")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "uptime_s": round(time.time() - started, 1),
                "models": {name: {"queued": b.pending(), "running": b.running, "batches": b.batches,
                                  "images": b.images}
                           for name, b in batchers.items()}}

    @app.get("/models", summary="The models served and their facts")
    async def list_models() -> dict[str, Any]:
        return {"models": [m.facts for m in models],
                "limits": {"max_n": settings.max_n, "max_chars": settings.max_chars, "max_batch": settings.max_batch,
                           "top": settings.top, "timeout_s": settings.timeout_s}}

    @app.post("/tokenize", summary="The caption's words as the model reads them; unknown ones flagged")
    async def tokenize(body: TokenizeBody) -> dict[str, Any]:
        m = pick(body.model)
        if len(body.caption) > settings.max_chars:
            raise InputError(f"caption: {len(body.caption)} characters, more than the {settings.max_chars} this "
                             "server accepts (attngan serve --max-chars)")
        return {"model": m.name, "tokens": tokens(m, body.caption)}

    @app.post("/generate", summary="Images of every stage and the attention data for a caption")
    async def generate(body: GenerateBody) -> dict[str, Any]:
        m = pick(body.model)
        job = check_request(m, body.caption, body.seed, body.n, settings)
        batcher = batchers.get(m.name)
        if batcher is None:
            raise Busy("the server is not running (starting or shutting down)")
        future = batcher.submit(job)
        try:
            output = await asyncio.wait_for(asyncio.wrap_future(future), timeout=settings.timeout_s)
        except asyncio.TimeoutError:
            future.cancel()  # still queued: dropped; running: its result is discarded
            raise TimedOut(f"no answer within {settings.timeout_s:g} s (attngan serve --timeout): the server "
                           "is busy; try again, or ask for fewer images") from None
        return await run_in_threadpool(render, m, job, output, settings.top, body.attention, body.figure)

    return app


class _NotFound(Exception):
    pass


def _validation_message(exc: RequestValidationError) -> str:
    """One line per problem of a request that is not the expected JSON: where and what."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        kind = err.get("type", "")
        if kind == "json_invalid":
            ctx = err.get("ctx") or {}
            parts.append(f"the body is not valid JSON ({ctx.get('error', 'malformed')}); send "
                         '{"caption": "...", "seed": 0, "n": 1}')
        elif kind == "missing":
            parts.append(f"{'.'.join(loc) or 'body'} is missing")
        elif kind == "model_attributes_type" or (not loc and "dict" in kind):
            parts.append('the body must be a JSON object such as {"caption": "...", "seed": 0, "n": 1}')
        else:
            value = err.get("input")
            shown = json.dumps(value)[:60] if _jsonable(value) else type(value).__name__
            parts.append(f"{'.'.join(loc) or 'body'}: {err.get('msg', 'invalid')} (got {shown})")
    return "; ".join(parts) or "invalid request"


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
