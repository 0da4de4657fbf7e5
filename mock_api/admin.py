"""Test and admin endpoints of the mock: inspect what arrived, reset, inject faults (never faulted)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from mock_api.auth import BearerAuth
from mock_api.bodies import detail, read_json_object
from mock_api.faults import FaultInjector, parse_fault_config
from mock_api.paths import path_problem
from mock_api.state import MockState
from mock_api.storage import Storage


def admin_router(state: MockState, faults: FaultInjector, storage: Storage, auth: BearerAuth) -> APIRouter:
    """Build the router of test/admin endpoints over the app's shared state."""
    router = APIRouter()

    @router.get("/syncResults")
    async def get_sync_results(request: Request) -> Response:
        """The run reports received so far, oldest first."""
        if not auth.allows(request):
            return auth.denied()
        return JSONResponse(state.reports)

    @router.get("/files")
    async def list_files(request: Request) -> Response:
        """Every stored file with size, sha256 and permissions, sorted by path."""
        if not auth.allows(request):
            return auth.denied()
        return JSONResponse(state.files())

    @router.get("/fileContent")
    async def file_content(request: Request) -> Response:
        """The raw content stored at ``?path=``."""
        if not auth.allows(request):
            return auth.denied()
        path = request.query_params.get("path", "")
        problem = path_problem(path, storage)
        if problem:
            return detail(400, problem)
        if path not in state.index:
            return detail(404, f"not found: {path}")
        content = await run_in_threadpool(storage.read_bytes, path)
        return Response(content, media_type="application/octet-stream")

    @router.get("/operations")
    async def operations(request: Request) -> Response:
        """The mutating calls answered so far, in order: each applied one, and each answered from
        the idempotency cache (``"replay": true``, which changed nothing)."""
        if not auth.allows(request):
            return auth.denied()
        return JSONResponse(state.operations)

    @router.get("/calls")
    async def calls(request: Request) -> Response:
        """Every contract call so far, answered or faulted, with its status and when it arrived
        and was answered (Unix times): what a test of the client's rate reads."""
        if not auth.allows(request):
            return auth.denied()
        return JSONResponse(state.calls)

    @router.get("/stats")
    async def stats(request: Request) -> Response:
        """Counters of replayed, faulted and applied calls, and how many calls are in flight
        (arrived, not answered yet: what a test waits on before it resets the mock)."""
        if not auth.allows(request):
            return auth.denied()
        return JSONResponse({**state.stats.to_json(), "in_flight": state.in_flight})

    @router.post("/admin/reset")
    async def reset(request: Request) -> Response:
        """Wipe files, permissions, operations, idempotency cache, reports, counters and faults."""
        if not auth.allows(request):
            return auth.denied()
        faults.clear()
        state.reset()
        await run_in_threadpool(storage.wipe)
        return JSONResponse({"reset": True})

    @router.get("/admin/faults")
    async def get_faults(request: Request) -> Response:
        """The fault setting in force."""
        if not auth.allows(request):
            return auth.denied()
        return JSONResponse(faults.config.to_json())

    @router.post("/admin/faults")
    async def set_faults(request: Request) -> Response:
        """Install a fault setting; ``{}`` or ``fail_rate: 0`` clears faults."""
        if not auth.allows(request):
            return auth.denied()
        body = await read_json_object(request)
        if body is None:
            return detail(400, "body must be a JSON object")
        try:
            config = parse_fault_config(body)
        except (ValueError, TypeError) as exc:
            return detail(400, str(exc))
        faults.configure(config)
        return JSONResponse(faults.config.to_json())

    return router
