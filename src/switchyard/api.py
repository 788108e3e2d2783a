"""HTTP API over the run store (FastAPI, served by uvicorn with ``switchyard api``).

Routes::

    GET  /healthz
    GET  /orchestrations?status=&app=&kind=&limit=
    GET  /orchestrations/{id}                 status, progress, batch counts, timestamps, error
    GET  /orchestrations/{id}/batches?status=&worker=&name=&error=&limit=&offset=&after=  (one page)
    GET  /orchestrations/{id}/dead-letters
    GET  /orchestrations/{id}/events
    GET  /orchestrations/{id}/log?lines=200
    POST /orchestrations/{id}/pause|resume|cancel|retry
    POST /orchestrations/{id}/reprocess       body (optional): {"batches": [idx, ...]}
    /schedules, /backfills, /alerts           see switchyard.api_schedules

Binds 127.0.0.1 by default. With a token (``$SWITCHYARD_API_TOKEN`` or ``--token-file``,
never argv, where ``ps`` shows it) every request must carry ``Authorization: Bearer <token>``,
the documentation routes (``/docs``, ``/redoc``, ``/openapi.json``) included; bound to any
other address it refuses to start without one. The token is never logged or written.
Errors: wrong or missing token 401, unknown id 404, illegal transition 409 (the body
names the current status), bad filter 400.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Any

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from switchyard.api_schedules import router as schedule_routes
from switchyard.binds import TOKEN_ENV, is_loopback
from switchyard.binds import check_api_bind as check_bind
from switchyard.exceptions import GuardError, InvalidTransition, LeaseHeld, NotFound, SwitchyardError
from switchyard.logs import tail
from switchyard.runs import control
from switchyard.runs.batch_reads import PAGE_MAX, BatchFilter, batch_listing
from switchyard.runs.state import BatchStatus, Status
from switchyard.runs.store import RunStore

__all__ = ["DEFAULT_PORT", "TOKEN_ENV", "check_bind", "create_app", "is_loopback", "read_token_file", "serve"]

DEFAULT_PORT = 8787


def read_token_file(path: Path | str) -> str:
    """The token in ``path`` (surrounding whitespace cut).

    Raises:
        GuardError: the file is missing, empty, or readable by other users.
    """
    path = Path(path).expanduser()
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise GuardError(f"--token-file {path}: cannot read it ({e.strerror}): write the token "
                         f"into that file with mode 0600") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise GuardError(f"--token-file {path}: other users may read it (mode {stat.S_IMODE(mode):04o}): "
                         f"run chmod 600 {path}")
    if not text:
        raise GuardError(f"--token-file {path}: the file is empty: write the token into it")
    return text


def create_app(store_path: Path | str | None = None, token: str | None = None) -> FastAPI:
    """The ASGI app over the store at ``store_path`` (default: the workspace's)."""
    store = RunStore(store_path)
    expected = token.encode() if token else None

    def authorize(request: Request) -> None:
        if expected is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), expected):
            raise HTTPException(401, "missing or wrong bearer token: send Authorization: Bearer <token>",
                                headers={"WWW-Authenticate": "Bearer"})

    # FastAPI's own documentation routes sit outside the app's dependencies: serve them
    # as ordinary routes instead, so the token guards them like every other one.
    app = FastAPI(title="Switchyard", summary="Orchestrations: status, batches, lifecycle",
                  dependencies=[Depends(authorize)], docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.include_router(schedule_routes(store))

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_document():
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def swagger_page():
        from fastapi.openapi.docs import get_swagger_ui_html

        return get_swagger_ui_html(openapi_url="/openapi.json", title="Switchyard API")

    @app.get("/redoc", include_in_schema=False)
    def redoc_page():
        from fastapi.openapi.docs import get_redoc_html

        return get_redoc_html(openapi_url="/openapi.json", title="Switchyard API")

    @app.exception_handler(NotFound)
    async def not_found(request: Request, e: NotFound):
        return JSONResponse({"detail": str(e)}, status_code=404)

    @app.exception_handler(InvalidTransition)
    async def conflict(request: Request, e: InvalidTransition):
        return JSONResponse({"detail": str(e), "status": e.current, "command": e.command}, status_code=409)

    @app.exception_handler(LeaseHeld)
    async def lease_held(request: Request, e: LeaseHeld):
        return JSONResponse({"detail": str(e)}, status_code=409)

    @app.exception_handler(SwitchyardError)
    async def bad_request(request: Request, e: SwitchyardError):
        return JSONResponse({"detail": str(e)}, status_code=400)

    def fresh() -> RunStore:
        control.sweep(store, min_interval=1.0)
        return store

    def statuses(values: list[str] | None, kind: type) -> list[str] | None:
        if not values:
            return None
        try:
            return [kind(v).value for v in values]
        except ValueError:
            raise HTTPException(400, f"unknown status in {values}: use one of "
                                     f"{', '.join(s.value for s in kind)}") from None

    @app.get("/metrics")
    def metrics():
        from fastapi.responses import PlainTextResponse

        from switchyard.analysis.metrics import PROMETHEUS_CONTENT_TYPE, prometheus_text

        return PlainTextResponse(prometheus_text(fresh()), media_type=PROMETHEUS_CONTENT_TYPE)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True, "store": str(store.path), "schema_version": store.schema_version()}

    @app.get("/orchestrations")
    def list_orchestrations(status: list[str] | None = Query(None), app_name: str | None = Query(None, alias="app"),
                            kind: str | None = None, limit: int = Query(200, ge=1, le=5000)) -> dict[str, Any]:
        rows = control.listing(fresh(), status=statuses(status, Status), app=app_name, kind=kind, limit=limit)
        return {"orchestrations": rows, "count": len(rows)}

    @app.get("/orchestrations/{oid}")
    def show(oid: str) -> dict[str, Any]:
        return control.summary(fresh(), oid)

    @app.get("/orchestrations/{oid}/batches")
    def batches(oid: str, status: list[str] | None = Query(None), worker: str | None = None,
                name: str | None = None, error: str | None = None,
                limit: int = Query(100, ge=1, le=PAGE_MAX), offset: int = Query(0, ge=0),
                after: int | None = Query(None, ge=-1)) -> dict[str, Any]:
        store = fresh()
        store.get(oid)  # an unknown id is a 404 before the filters are read
        filt = BatchFilter.of(statuses(status, BatchStatus), worker=worker, name=name, error=error)
        return batch_listing(store, oid, filt, limit=limit, offset=offset, after=after)

    @app.get("/orchestrations/{oid}/dead-letters")
    def dead(oid: str) -> dict[str, Any]:
        return {"orchestration_id": oid, "dead_letters": control.dead_letters(fresh(), oid)}

    @app.get("/orchestrations/{oid}/events")
    def events(oid: str) -> dict[str, Any]:
        return {"orchestration_id": oid, "events": fresh().events(oid)}

    @app.get("/orchestrations/{oid}/log")
    def log(oid: str, lines: int = Query(200, ge=1, le=10_000)) -> dict[str, Any]:
        return {"orchestration_id": oid, "lines": tail(control.log_path(fresh(), oid), lines)}

    @app.post("/orchestrations/{oid}/reprocess")
    def reprocess(oid: str, body: dict | None = Body(None)) -> dict[str, Any]:
        idxs = (body or {}).get("batches")
        requeued = control.reprocess(store, oid, idxs)
        return {**control.summary(store, oid), "requeued": requeued}

    @app.post("/orchestrations/{oid}/{command}")
    def lifecycle(oid: str, command: str) -> dict[str, Any]:
        if command not in control.COMMAND_FUNCTIONS:
            raise HTTPException(404, f"unknown command '{command}': use one of "
                                     f"{', '.join(control.COMMAND_FUNCTIONS)}")
        control.apply(store, oid, command)
        return control.summary(store, oid)

    return app


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None,
          store_path: Path | str | None = None, token_file: Path | str | None = None) -> None:
    """Serve the API with uvicorn until interrupted.

    The token is ``token``, else the content of ``token_file``, else ``$SWITCHYARD_API_TOKEN``.

    Raises:
        GuardError: bound beyond loopback without a token; an unusable token file.
    """
    import uvicorn

    if not token and token_file:
        token = read_token_file(token_file)
    token = token or os.environ.get(TOKEN_ENV) or None
    check_bind(host, token)
    app = create_app(store_path, token)
    shown = f"[{host}]" if ":" in host else host
    print(f"switchyard: API on http://{shown}:{port} over {app.state.store.path}"
          + (" (bearer token required)" if token else " (no token: loopback only)"), flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info")
