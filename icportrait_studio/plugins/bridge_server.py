"""The live bridge: a small local HTTP server host plugins (Krita, GIMP, Photoshop) relight through.

Security model: another program on the same machine, or a web page in the user's browser, must not
be able to drive it. So it binds loopback only (anything else is refused at construction), every
request needs the per-install token (``Authorization: Bearer`` or ``X-ICPortrait-Token``, compared
in constant time), the Host header must be a loopback name (DNS rebinding), a browser Origin must be
a loopback one, and bodies are capped (413 before the body is read when Content-Length says so).

API (JSON unless noted)::

    GET    /v1/info                      version, API level, limits
    GET    /v1/presets                   rig preset names
    POST   /v1/jobs                      submit: image body + X-ICPortrait-Job header (JSON params),
                                         or a JSON body {"image": base64, ...params}  -> 202 {id, ...}
    GET    /v1/jobs/{id}                 state, progress, stage, error
    GET    /v1/jobs/{id}/events          progress as Server-Sent Events until the job ends
    GET    /v1/jobs/{id}/result          ?format=raw|png|tiff (default: raw in -> raw out, else png)
    DELETE /v1/jobs/{id}                 cancel (also POST /v1/jobs/{id}/cancel)

Job params: ``rig`` (a LightRig dict) or ``preset`` (name); optional ``view`` {yaw, pitch},
``backend``, ``mode`` ('relight' or 'view'); ``raw`` {width, height, order, bit_depth, max_value}
when the body is raw samples (see ``bridge_codec``). Jobs run on a ``JobManager`` (one worker
thread: the GPU is never shared); the app can pass its own so bridge jobs queue with its renders.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from icportrait_studio import __version__
from icportrait_studio.errors import InputError
from icportrait_studio.jobs import JobManager, JobState
from icportrait_studio.pipeline.progress import CancelToken, ProgressFn
from icportrait_studio.plugins import bridge_codec as codec
from icportrait_studio.plugins.api import API_VERSION
from icportrait_studio.plugins.bridge_config import (
    DEFAULT_PORT,
    check_loopback_bind,
    clear_state,
    is_allowed_origin,
    is_loopback_hostname,
    load_or_create_token,
    write_state,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 512 * 1024 * 1024  # a 16-bit RGBA 8K x 8K layer
FILE_TYPES = {"image/png": ".png", "image/tiff": ".tif", "image/jpeg": ".jpg", "image/webp": ".webp"}
RAW_TYPE = "application/octet-stream"


@dataclass
class BridgeInput:
    """What a runner gets: the decoded image and the validated parameters."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    rig: Any  # LightRig
    view: Any  # ViewPose
    backend: str
    image_id: str
    icc_profile: bytes | None = None  # a sent file's profile: a ProPhoto one is relit at its gamma


Runner = Callable[[BridgeInput, ProgressFn, CancelToken], tuple[np.ndarray, np.ndarray | None]]


def default_runner(inp: BridgeInput, progress: ProgressFn, cancel: CancelToken) -> tuple[np.ndarray, np.ndarray | None]:
    """Relight (or change the view) with a registered backend, reusing its per-image analysis cache."""
    from icportrait_studio.core.request import EditRequest
    from icportrait_studio.imaging.scene_tone import scene_gamma
    from icportrait_studio.pipeline.base import SourceImage
    from icportrait_studio.pipeline.registry import get_backend

    source = SourceImage(inp.image_id, inp.rgb, inp.alpha, tone=scene_gamma(inp.icc_profile))
    request = EditRequest(image_id=inp.image_id, rig=inp.rig, view=inp.view, backend=inp.backend)
    result = get_backend(inp.backend).run(request, source, progress, cancel)
    return result.image, result.alpha


@dataclass
class _Record:
    id: str
    manager_id: int = 0
    raw: codec.RawSpec | None = None
    bit_depth: int = 8
    icc_profile: bytes | None = None
    result: tuple[np.ndarray, np.ndarray | None] | None = None
    created: float = field(default_factory=time.time)


class BridgeServer:
    def __init__(self, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None,
                 token_path: Path | None = None, state_path: Path | None = None, max_body: int = DEFAULT_MAX_BODY,
                 runner: Runner | None = None, jobs: JobManager | None = None, max_pending: int = 128,
                 keep_jobs: int = 256, allowed_origins: tuple[str, ...] = (), stream_limit_s: float = 3600.0) -> None:
        self.host = check_loopback_bind(host)  # raises BridgeSecurityError before anything is bound
        self.port = int(port)
        self.token = token if token is not None else load_or_create_token(token_path)
        if len(self.token) < 16:
            raise ValueError("the bridge token must be at least 16 characters")
        self.max_body = int(max_body)
        self.max_pending = max_pending
        self.keep_jobs = keep_jobs
        self.allowed_origins = tuple(allowed_origins)
        self.stream_limit_s = stream_limit_s
        self._state_path = state_path
        self._runner = runner or default_runner
        self._own_jobs = jobs is None
        self._jobs = jobs or JobManager(name="bridge", history=max(256, keep_jobs * 2), keep_results=0)
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()
        self._app_runner: web.AppRunner | None = None
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=self.max_body)
        app.router.add_get("/v1/info", self._info)
        app.router.add_get("/v1/presets", self._presets)
        app.router.add_post("/v1/jobs", self._submit)
        app.router.add_get("/v1/jobs", self._list)
        app.router.add_get("/v1/jobs/{id}", self._status)
        app.router.add_get("/v1/jobs/{id}/events", self._events)
        app.router.add_get("/v1/jobs/{id}/result", self._result)
        app.router.add_delete("/v1/jobs/{id}", self._cancel)
        app.router.add_post("/v1/jobs/{id}/cancel", self._cancel)
        return app

    async def start(self) -> str:
        """Start serving on the running loop; returns the URL (port 0 picks a free port)."""
        self._app_runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=5.0)
        await self._app_runner.setup()
        site = web.TCPSite(self._app_runner, self.host, self.port)
        await site.start()
        addresses = self._app_runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        if self._state_path is not None:
            write_state(self.url, self.port, self._state_path)
        log.info("bridge listening on %s", self.url)
        return self.url

    async def close(self) -> None:
        """Stop: our jobs are cancelled first, so open progress streams end and nothing waits on them."""
        self._closing = True
        with self._lock:
            ids = [r.manager_id for r in self._records.values() if r.manager_id]
        for mid in ids:
            self._jobs.cancel(mid)
        if self._app_runner is not None:
            await self._app_runner.cleanup()
            self._app_runner = None
        if self._state_path is not None:
            clear_state(self._state_path)
        if self._own_jobs:
            await asyncio.to_thread(self._jobs.shutdown, True, True, timeout=10)

    def start_in_thread(self, timeout: float = 15.0) -> str:
        """Serve from a background thread with its own event loop (the app and tests use this)."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.close())
                loop.close()

        self._thread = threading.Thread(target=main, name="icportrait-bridge", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("the bridge did not start in time")
        if errors:
            raise errors[0]
        return self.url

    def stop(self, timeout: float = 15.0) -> None:
        """Stop a server started with ``start_in_thread``."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def serve_forever(self) -> None:
        """Blocking foreground serving (``icportrait bridge serve``); Ctrl+C stops it."""
        async def run() -> None:
            await self.start()
            try:
                await asyncio.Event().wait()
            finally:
                await self.close()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run())

    # --- security --------------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        if not is_loopback_hostname(request.host or ""):
            return _error(403, "the Host header must name this machine (localhost, 127.0.0.1 or [::1])")
        origin = request.headers.get("Origin")
        if origin is not None and not is_allowed_origin(origin, self.allowed_origins):
            return _error(403, f"requests from {origin} are not allowed")
        supplied = _token_from(request)
        if supplied is None or not hmac.compare_digest(supplied.encode(), self.token.encode()):
            resp = _error(401, "missing or wrong bridge token")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="icportrait-bridge"'
            return resp
        if request.content_length is not None and request.content_length > self.max_body:
            return _error(413, f"the body is larger than {self.max_body} bytes")
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"the body is larger than {self.max_body} bytes")
        except InputError as exc:
            return _error(400, str(exc))

    # --- handlers --------------------------------------------------------------------------------

    async def _info(self, request: web.Request) -> web.Response:
        from icportrait_studio.pipeline.registry import backend_names

        return web.json_response({"app": "IC-Portrait Studio", "version": __version__, "api": API_VERSION,
                                  "max_body": self.max_body, "backends": backend_names()})

    async def _presets(self, request: web.Request) -> web.Response:
        from icportrait_studio.core.presets import list_presets

        presets = await asyncio.to_thread(list_presets)
        return web.json_response({"presets": [{"name": p.name, "description": p.description} for p in presets]})

    async def _submit(self, request: web.Request) -> web.Response:
        ctype = request.content_type
        body = await request.read()
        if ctype == "application/json":  # parsed off the event loop: a base64 layer can be 100s of MB
            params, image = await asyncio.to_thread(_json_job, body)
            ctype = str(params.pop("content_type", RAW_TYPE if "raw" in params else "image/png"))
        else:
            params = _json(request.headers.get("X-ICPortrait-Job", "{}").encode(), "X-ICPortrait-Job header")
            image = body
        if not image:
            raise InputError("no image in the request")
        job = _parse_params(params)
        raw = codec.RawSpec.parse(params.get("raw")) if ctype == RAW_TYPE else None
        if ctype != RAW_TYPE and ctype not in FILE_TYPES:
            raise InputError(f"unsupported image type {ctype!r}; send {RAW_TYPE} with 'raw' or one of "
                             f"{', '.join(FILE_TYPES)}")
        if raw is not None and len(image) != raw.nbytes:
            raise InputError(f"raw body has {len(image)} bytes, {raw.width}x{raw.height} {raw.order} "
                             f"{raw.bit_depth}-bit needs {raw.nbytes}")
        with self._lock:
            pending = sum(1 for r in self._records.values() if r.result is None and self._state(r) in
                          ("queued", "running"))
            if pending >= self.max_pending:
                return _error(429, f"{pending} jobs are waiting; try again when some have finished")
            rec = _Record(uuid.uuid4().hex, raw=raw)
            self._records[rec.id] = rec
        digest = await asyncio.to_thread(lambda: hashlib.blake2b(image, digest_size=12).hexdigest())
        work = self._work(rec, image, ctype, job, f"bridge:{digest}")
        rec.manager_id = self._jobs.submit(work, label=f"bridge {job['mode']}").id
        self._evict()
        return web.json_response({"id": rec.id, "state": "queued", "status": f"/v1/jobs/{rec.id}",
                                  "events": f"/v1/jobs/{rec.id}/events", "result": f"/v1/jobs/{rec.id}/result"},
                                 status=202)

    def _work(self, rec: _Record, image: bytes, ctype: str, job: dict, image_id: str) -> Any:
        runner = self._runner

        def work(progress: ProgressFn, cancel: CancelToken) -> bool:
            cancel.raise_if_cancelled()
            decoded = codec.decode_raw(image, rec.raw) if rec.raw else codec.decode_file(image, FILE_TYPES[ctype])
            rec.bit_depth, rec.icc_profile = decoded.bit_depth, decoded.icc_profile
            inp = BridgeInput(decoded.rgb, decoded.alpha, job["rig"], job["view"], job["backend"], image_id,
                              decoded.icc_profile)
            rgb, alpha = runner(inp, progress, cancel)
            cancel.raise_if_cancelled()
            rec.result = (np.asarray(rgb, np.float32), decoded.alpha if alpha is None else alpha)
            return True

        return work

    def _evict(self) -> None:
        """Forget the oldest finished jobs beyond ``keep_jobs`` (their results are images)."""
        with self._lock:
            excess = len(self._records) - self.keep_jobs
            for rid in [rid for rid, r in self._records.items() if self._state(r) not in ("queued", "running")]:
                if excess <= 0:
                    break
                del self._records[rid]
                excess -= 1

    def _state(self, rec: _Record) -> str:
        snap = self._jobs.get(rec.manager_id) if rec.manager_id else None
        if snap is None:
            return "queued" if not rec.manager_id else ("done" if rec.result is not None else "expired")
        return snap.state.value

    def _describe(self, rec: _Record) -> dict:
        snap = self._jobs.get(rec.manager_id) if rec.manager_id else None
        if snap is None:
            return {"id": rec.id, "state": self._state(rec), "progress": 1.0 if rec.result else 0.0, "stage": "",
                    "error": None}
        return {"id": rec.id, "state": snap.state.value, "progress": round(float(snap.progress), 4),
                "stage": snap.stage, "error": snap.error}

    def _record(self, request: web.Request) -> _Record:
        with self._lock:
            rec = self._records.get(request.match_info["id"])
        if rec is None:
            raise web.HTTPNotFound(text=json.dumps({"error": "no such job (finished jobs are kept for a while only)"}),
                                   content_type="application/json")
        return rec

    async def _list(self, request: web.Request) -> web.Response:
        with self._lock:
            records = list(self._records.values())
        return web.json_response({"jobs": [self._describe(r) for r in records]})

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self._describe(self._record(request)))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: one ``data:`` line per change, a comment every 15 s, ends with the job."""
        rec = self._record(request)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        last: tuple | None = None
        last_sent = time.monotonic()
        deadline = time.monotonic() + self.stream_limit_s
        while time.monotonic() < deadline:
            info = self._describe(rec)
            key = (info["state"], info["progress"], info["stage"])
            if key != last:
                await resp.write(f"data: {json.dumps(info)}\n\n".encode())
                last, last_sent = key, time.monotonic()
            elif time.monotonic() - last_sent > 15:
                await resp.write(b": keep-alive\n\n")
                last_sent = time.monotonic()
            if info["state"] not in ("queued", "running") or self._closing:
                break
            await asyncio.sleep(0.05)
        await resp.write_eof()
        return resp

    async def _result(self, request: web.Request) -> web.Response:
        rec = self._record(request)
        state = self._state(rec)
        if state != JobState.DONE.value or rec.result is None:
            return _error(409, f"the job is {state}, there is no result")
        rgb, alpha = rec.result
        fmt = request.query.get("format", "raw" if rec.raw else "png").lower()
        if fmt == "raw":
            spec = rec.raw or codec.RawSpec(rgb.shape[1], rgb.shape[0], "rgba", 8)
            q = request.query
            try:
                spec = codec.RawSpec.parse({**spec.to_dict(), "width": rgb.shape[1], "height": rgb.shape[0],
                                            **{k: q[k] for k in ("order", "bit_depth", "max_value") if k in q}})
            except InputError as exc:
                return _error(400, str(exc))
            data = await asyncio.to_thread(codec.encode_raw, rgb, alpha, spec)
            return web.Response(body=data, content_type=RAW_TYPE, headers={
                "X-Width": str(spec.width), "X-Height": str(spec.height), "X-Order": spec.order,
                "X-Bit-Depth": str(spec.bit_depth), "X-Max-Value": str(spec.top)})
        depth = int(request.query.get("bit_depth", rec.bit_depth))
        if depth not in (8, 16) or fmt not in ("png", "tiff"):
            return _error(400, "format must be raw, png or tiff and bit_depth 8 or 16")
        data = await asyncio.to_thread(codec.encode_file, rgb, alpha, fmt, depth, rec.icc_profile)
        return web.Response(body=data, content_type="image/png" if fmt == "png" else "image/tiff")

    async def _cancel(self, request: web.Request) -> web.Response:
        rec = self._record(request)
        signalled = self._jobs.cancel(rec.manager_id)
        return web.json_response({"id": rec.id, "cancelled": signalled, "state": self._state(rec)}, status=202)


def _token_from(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("X-ICPortrait-Token")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _json(data: bytes, where: str) -> dict:
    try:
        value = json.loads(data or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{where} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise InputError(f"{where} must be a JSON object")
    return value


def _json_job(body: bytes) -> tuple[dict, bytes]:
    params = _json(body, "body")
    try:
        image = base64.b64decode(str(params.pop("image", "")), validate=True)
    except (binascii.Error, ValueError):
        raise InputError("'image' must be base64 data") from None
    return params, image


def _parse_params(params: dict) -> dict:
    """Validate what the job asks for before anything is queued (bad input -> 400, not a failed job)."""
    from icportrait_studio.core.lights import LightRig
    from icportrait_studio.core.presets import load_preset
    from icportrait_studio.core.view import ViewPose
    from icportrait_studio.pipeline.registry import backend_names

    mode = params.get("mode", "relight")
    if mode not in ("relight", "view"):
        raise InputError("mode must be 'relight' or 'view'")
    try:
        if isinstance(params.get("rig"), dict):
            rig = LightRig.from_dict(params["rig"])
        elif isinstance(params.get("preset"), str):
            rig = load_preset(params["preset"]).rig
        else:
            raise InputError("give a 'rig' (light rig object) or a 'preset' name")
        if mode == "view" and not isinstance(params.get("view"), dict):
            raise InputError("a view job needs 'view': {\"yaw\": .., \"pitch\": ..}")
        view = ViewPose.from_dict(params["view"]) if isinstance(params.get("view"), dict) else ViewPose()
    except (TypeError, ValueError, KeyError) as exc:
        raise InputError(f"bad job parameters: {exc}") from None
    backend = str(params.get("backend", "physical"))
    if backend not in backend_names():
        raise InputError(f"unknown backend {backend!r}; available: {', '.join(backend_names())}")
    return {"mode": mode, "rig": rig, "view": view, "backend": backend}


__all__ = ["BridgeInput", "BridgeServer", "Runner", "default_runner"]
