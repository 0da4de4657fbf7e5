"""FastAPI app of the mock file manager: the contract endpoints, wired to storage, faults and state."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from mock_api.admin import admin_router
from mock_api.auth import BearerAuth
from mock_api.bodies import detail, drain, read_json_object, spool
from mock_api.faults import FaultInjector
from mock_api.paths import path_problem
from mock_api.state import MockState, Outcome
from mock_api.storage import FileRecord, Storage, StorageConflict

#: Statuses whose injected answers also carry ``Retry-After`` (0, retry at once, unless the
#: fault setting names seconds).
RETRY_AFTER_STATUSES = frozenset({429, 503})
IDEMPOTENCY_HEADER = "idempotency-key"

logger = logging.getLogger(__name__)

#: A contract endpoint: the request in, the answer out.
Endpoint = Callable[[Request], Awaitable[Response]]
#: Applies one validated call and returns its answer.
Apply = Callable[[], Awaitable[Outcome]]


def _error(status: int, message: str) -> Outcome:
    """An error outcome in the API's ``{"detail": ...}`` shape."""
    return status, {"detail": message}


def fault_response(status: int, retry_after: int | None = None) -> JSONResponse:
    """The answer to a call selected for an injected fault."""
    headers = {"Retry-After": str(retry_after or 0)} if status in RETRY_AFTER_STATUSES else None
    return JSONResponse({"detail": "injected fault"}, status_code=status, headers=headers)


def wrong_sha256(sha: str) -> str:
    """A sha256 hex string guaranteed to differ from ``sha`` (for ``corrupt`` faults)."""
    flipped = sha[::-1]
    if flipped == sha:
        flipped = ("1" if sha[0] == "0" else "0") + sha[1:]
    return flipped


def create_app(storage: Storage, token: str | None = None) -> FastAPI:
    """Build the mock file-manager app on ``storage``; with ``token`` set, require that bearer token."""
    state = MockState(storage.scan())
    faults = FaultInjector()
    auth = BearerAuth(token)

    app = FastAPI(title="mock file manager", docs_url=None, redoc_url=None, openapi_url=None)

    def post(route: str) -> Callable[[Endpoint], Endpoint]:
        """Register a contract endpoint as a plain Starlette route: each handler reads its own
        request, so FastAPI's parameter solving would only add CPU to every call (about 30 us,
        a tenth of an updatePermissions)."""
        def register(endpoint: Endpoint) -> Endpoint:
            app.router.add_route(route, endpoint, methods=["POST"])
            return endpoint
        return register

    async def storage_io(call: Callable[..., None], *args: object) -> None:
        """Run a storage call in the loop or in a worker thread, as the backend asks."""
        if storage.inline_io:
            call(*args)
        else:
            await run_in_threadpool(call, *args)

    app.state.mock = state
    app.state.faults = faults
    app.state.storage = storage

    async def mutate(request: Request, op: str, path: str | None, to: str | None, apply: Apply) -> Response:
        """Run one validated mutating call through fault injection, idempotency and the operation
        log; every call, answered or faulted, goes into the call log with when it arrived."""
        arrived = time.time()
        state.in_flight += 1
        try:
            response = await mutate_once(request, op, path, to, apply)
        finally:
            state.in_flight -= 1
        state.record_call(op, path, response.status_code, arrived, time.time())
        return response

    async def mutate_once(request: Request, op: str, path: str | None, to: str | None, apply: Apply) -> Response:
        """The call through fault injection and idempotency, to its answer."""
        fault = faults.select(path)
        if fault is not None:
            if fault.latency_s > 0:
                await asyncio.sleep(fault.latency_s)
            if fault.status is not None and not fault.after_apply:
                state.stats.faulted += 1
                return fault_response(fault.status, fault.retry_after)

        key = request.headers.get(IDEMPOTENCY_HEADER) or None
        if key is None:
            status, body = await run_apply(op, path, to, None, apply)
        else:
            # Same key twice at once: the second waits here, then finds the first's answer cached.
            async with state.key_locks.hold(f"{op}\x00{key}"):
                cached = state.idempotency.get(op, key)
                if cached is not None:
                    status, body = cached
                    state.record_operation(op, path, to, key, status, replay=True)
                else:
                    status, body = await run_apply(op, path, to, key, apply)
                    if status < 500:
                        state.idempotency.put(op, key, (status, body))

        if fault is not None:
            if fault.status is not None:  # after_apply: the change stands but the client sees a failure
                state.stats.faulted += 1
                return fault_response(fault.status, fault.retry_after)
            if fault.corrupt and op == "saveToDisk" and status == 200:
                state.stats.faulted += 1
                body = {**body, "sha256": wrong_sha256(body["sha256"])}
        return JSONResponse(body, status_code=status)

    async def run_apply(op: str, path: str | None, to: str | None, key: str | None, apply: Apply) -> Outcome:
        """Apply the call and log it when it succeeded."""
        try:
            status, body = await apply()
        except ClientDisconnect:
            # Nobody will read an answer, and caching one would poison the client's retry with this key.
            raise
        except Exception as exc:
            # Any storage failure becomes a JSON 500 the client can retry, not a dropped connection.
            logger.exception("%s failed", op)
            return _error(500, f"storage error: {type(exc).__name__}: {exc}")
        if status == 200:
            state.record_operation(op, path, to, key, status)
        return status, body

    @app.get("/health")
    async def health() -> Response:
        """Liveness probe; open and never faulted."""
        return JSONResponse({"status": "ok"})

    @post("/saveToDisk")
    async def save_to_disk(request: Request) -> Response:
        """Store the raw request body at ``?path=``."""
        try:
            if not auth.allows(request):
                return auth.denied()
            path = request.query_params.get("path")
            if path is None:
                return detail(400, "missing query parameter 'path'")
            problem = path_problem(path, storage)
            if problem:
                return detail(400, problem)

            async def apply() -> Outcome:
                tmp, size, sha = await spool(request, storage.tmp_dir)
                async with state.path_locks.hold(path):
                    old = state.index.get(path)
                    # Overwriting keeps the permissions already set on the path.
                    record = FileRecord(size, sha, old.permissions if old else None)
                    try:
                        await storage_io(storage.commit, tmp, path, record)
                    except StorageConflict as exc:
                        return _error(409, f"{exc}: {path}")
                    state.index[path] = record
                return 200, {"path": path, "size": size, "sha256": sha}

            return await mutate(request, "saveToDisk", path, None, apply)
        except ClientDisconnect:
            return detail(400, "client disconnected before the body was complete")
        finally:
            # Faulted, replayed and rejected uploads still have an unread body.
            await drain(request)

    @post("/updatePermissions")
    async def update_permissions(request: Request) -> Response:
        """Set the permissions object of a stored path."""
        if not auth.allows(request):
            return auth.denied()
        body = await read_json_object(request)
        if body is None:
            return detail(400, "body must be a JSON object")
        path, permissions = body.get("path"), body.get("permissions")
        problem = path_problem(path, storage)
        if problem:
            return detail(400, problem)
        if not isinstance(permissions, dict):
            return detail(400, "field 'permissions' must be a JSON object")
        assert isinstance(path, str)

        async def apply() -> Outcome:
            async with state.path_locks.hold(path):
                record = state.index.get(path)
                if record is None:
                    return _error(404, f"not found: {path}")
                updated = replace(record, permissions=permissions)
                await storage_io(storage.set_permissions, path, updated)
                state.index[path] = updated
            return 200, {"path": path, "permissions": permissions}

        return await mutate(request, "updatePermissions", path, None, apply)

    @post("/deleteFile")
    async def delete_file(request: Request) -> Response:
        """Delete a stored path; an unknown path is a success with ``deleted: false``."""
        if not auth.allows(request):
            return auth.denied()
        body = await read_json_object(request)
        if body is None:
            return detail(400, "body must be a JSON object")
        path = body.get("path")
        problem = path_problem(path, storage)
        if problem:
            return detail(400, problem)
        assert isinstance(path, str)

        async def apply() -> Outcome:
            async with state.path_locks.hold(path):
                if path not in state.index:
                    return 200, {"path": path, "deleted": False}
                await storage_io(storage.delete, path)
                del state.index[path]
            return 200, {"path": path, "deleted": True}

        return await mutate(request, "deleteFile", path, None, apply)

    @post("/moveFile")
    async def move_file(request: Request) -> Response:
        """Move a stored path (content and permissions) to a new, unused path."""
        if not auth.allows(request):
            return auth.denied()
        body = await read_json_object(request)
        if body is None:
            return detail(400, "body must be a JSON object")
        src, dst = body.get("from"), body.get("to")
        problem = path_problem(src, storage, "from") or path_problem(dst, storage, "to")
        if problem:
            return detail(400, problem)
        assert isinstance(src, str) and isinstance(dst, str)

        async def apply() -> Outcome:
            async with state.path_locks.hold(src, dst):
                if src not in state.index:
                    return _error(404, f"not found: {src}")
                if dst in state.index:
                    return _error(409, f"already exists: {dst}")
                try:
                    await storage_io(storage.move, src, dst)
                except StorageConflict as exc:
                    return _error(409, f"{exc}: {dst}")
                state.index[dst] = state.index.pop(src)
            return 200, {"from": src, "to": dst}

        return await mutate(request, "moveFile", src, dst, apply)

    @post("/syncResults")
    async def post_sync_results(request: Request) -> Response:
        """Accept a sync run report."""
        if not auth.allows(request):
            return auth.denied()
        report = await read_json_object(request)
        if report is None:
            return detail(400, "body must be a JSON object")

        async def apply() -> Outcome:
            state.reports.append(report)
            return 200, {"received": True}

        return await mutate(request, "syncResults", None, None, apply)

    app.include_router(admin_router(state, faults, storage, auth))
    return app
