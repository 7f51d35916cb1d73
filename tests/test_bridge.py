"""The live bridge server: loopback only, token, Origin/Host checks, body limit, jobs, progress, cancel.

Every server here binds 127.0.0.1 on a free port and every client connects there only.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import stat
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from icportrait_studio.pipeline.progress import CancelToken, Progress, ProgressFn
from icportrait_studio.plugins.bridge_config import BridgeSecurityError, check_loopback_bind, load_or_create_token
from icportrait_studio.plugins.bridge_server import BridgeInput, BridgeServer

TOKEN = "t" * 43
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def call(url: str, path: str, *, token: str | None = TOKEN, data: bytes | None = None,
         headers: dict | None = None, method: str | None = None) -> tuple[int, dict, bytes]:
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + path, data=data, headers=h, method=method)
    try:
        with _OPENER.open(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def raw_job(width: int, height: int, preset: str = "loop", order: str = "rgba", depth: int = 8) -> dict:
    return {"Content-Type": "application/octet-stream",
            "X-ICPortrait-Job": json.dumps({"preset": preset, "raw": {"width": width, "height": height,
                                                                       "order": order, "bit_depth": depth}})}


def wait_state(url: str, job_id: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = json.loads(call(url, f"/v1/jobs/{job_id}")[2])
        if st["state"] not in ("queued", "running"):
            return st
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} still {st['state']}")


class SlowRunner:
    """Halves the image in 100 cancellable steps of 20 ms; records how far each job got."""

    def __init__(self, steps: int = 100, step_s: float = 0.02) -> None:
        self.steps, self.step_s = steps, step_s
        self.done_steps: list[int] = []
        self.started = threading.Event()

    def __call__(self, inp: BridgeInput, progress: ProgressFn, cancel: CancelToken):
        self.started.set()
        n = 0
        try:
            for n in range(1, self.steps + 1):
                cancel.raise_if_cancelled()
                progress(Progress(n / self.steps, f"step {n}"))
                time.sleep(self.step_s)
        finally:
            self.done_steps.append(n)
        return inp.rgb * 0.5, None


def fast_runner(inp: BridgeInput, progress: ProgressFn, cancel: CancelToken):
    return inp.rgb * 0.5, None


@pytest.fixture
def server(request) -> Iterator[BridgeServer]:
    runner = getattr(request, "param", fast_runner)
    srv = BridgeServer(port=0, token=TOKEN, runner=runner, max_body=64 * 1024)
    srv.start_in_thread()
    yield srv
    srv.stop()


# --- security ---------------------------------------------------------------------------------------------


def test_token_is_required(server: BridgeServer) -> None:
    status, headers, body = call(server.url, "/v1/info", token=None)
    assert status == 401 and "Bearer" in headers.get("WWW-Authenticate", "")
    assert call(server.url, "/v1/info", token="wrong" * 9)[0] == 401
    assert call(server.url, "/v1/jobs", token=None, data=b"x" * 10, method="POST")[0] == 401
    assert call(server.url, "/v1/info", token=None, headers={"X-ICPortrait-Token": TOKEN})[0] == 200
    status, _, body = call(server.url, "/v1/info")
    assert status == 200 and json.loads(body)["api"] == "1.0"


def test_non_loopback_binds_are_refused() -> None:
    for host in ("0.0.0.0", "192.168.1.20", "::", "example.com", ""):
        with pytest.raises(BridgeSecurityError):
            BridgeServer(host=host, port=0, token=TOKEN)
    assert check_loopback_bind("localhost") == "127.0.0.1"
    assert check_loopback_bind("[::1]") == "::1" and check_loopback_bind("127.0.0.2") == "127.0.0.2"


def test_foreign_origin_and_host_are_refused(server: BridgeServer) -> None:
    assert call(server.url, "/v1/info", headers={"Origin": "https://evil.example"})[0] == 403
    assert call(server.url, "/v1/info", headers={"Origin": "null"})[0] == 403
    assert call(server.url, "/v1/info", headers={"Origin": "http://localhost:3000"})[0] == 200
    # DNS rebinding: a page on attacker.example resolving to 127.0.0.1 still sends its own Host.
    assert call(server.url, "/v1/info", headers={"Host": f"attacker.example:{server.port}"})[0] == 403


def test_oversize_bodies_get_413(server: BridgeServer) -> None:
    big = b"\0" * (64 * 1024 + 1)
    status, _, body = call(server.url, "/v1/jobs", data=big, method="POST", headers=raw_job(128, 128))
    assert status == 413 and b"larger" in body

    async def chunked() -> int:  # no Content-Length: the limit must hold while reading too
        import aiohttp

        async def gen():
            for _ in range(20):
                yield b"\0" * 8192

        async with aiohttp.ClientSession() as s, s.post(server.url + "/v1/jobs", data=gen(),
                                                        headers={"Authorization": f"Bearer {TOKEN}",
                                                                 **raw_job(128, 128)}) as r:
            return r.status

    assert asyncio.run(chunked()) == 413


def test_bad_requests_get_400(server: BridgeServer) -> None:
    px = b"\0" * (4 * 4 * 4)
    assert call(server.url, "/v1/jobs", data=px[:-1], method="POST", headers=raw_job(4, 4))[0] == 400
    assert call(server.url, "/v1/jobs", data=px, method="POST", headers=raw_job(4, 4, preset="nope"))[0] == 400
    status, _, body = call(server.url, "/v1/jobs", data=px, method="POST",
                           headers={"Content-Type": "application/octet-stream", "X-ICPortrait-Job": "{not json"})
    assert status == 400 and b"JSON" in body
    assert call(server.url, "/v1/jobs/nope")[0] == 404


def test_token_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "bridge_token"
    token = load_or_create_token(path)
    assert len(token) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(path) == token


def test_state_file_lets_host_plugins_find_the_server(tmp_path: Path) -> None:
    state = tmp_path / "bridge.json"
    srv = BridgeServer(port=0, token=TOKEN, runner=fast_runner, state_path=state)
    url = srv.start_in_thread()
    try:
        assert json.loads(state.read_text())["url"] == url
    finally:
        srv.stop()
    assert not state.exists()


# --- jobs -------------------------------------------------------------------------------------------------


def test_raw_round_trip_keeps_layout_and_alpha(server: BridgeServer) -> None:
    rng = np.random.default_rng(0)
    px = rng.integers(0, 65536, (5, 7, 4), dtype=np.uint16)
    bgra = px[..., [2, 1, 0, 3]].astype("<u2").tobytes()
    status, _, body = call(server.url, "/v1/jobs", data=bgra, method="POST", headers=raw_job(7, 5, order="bgra",
                                                                                              depth=16))
    assert status == 202
    job = json.loads(body)
    assert wait_state(server.url, job["id"])["state"] == "done"
    status, headers, data = call(server.url, job["result"])
    assert status == 200 and headers["X-Order"] == "bgra" and headers["X-Bit-Depth"] == "16"
    out = np.frombuffer(data, "<u2").reshape(5, 7, 4)[..., [2, 1, 0, 3]]
    assert np.array_equal(out[..., 3], px[..., 3])  # alpha untouched
    from icportrait_studio.imaging.color import decode_to_linear, encode_from_linear

    assert np.abs(out[..., :3].astype(int) - encode_from_linear(decode_to_linear(px[..., :3]) * 0.5, 16)).max() <= 1


def test_json_body_with_a_png_and_png_result(server: BridgeServer) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.full((6, 8, 3), 200, np.uint8)).save(buf, "PNG")
    body = json.dumps({"image": base64.b64encode(buf.getvalue()).decode(), "content_type": "image/png",
                       "rig": {"lights": [{"azimuth": 30}]}}).encode()
    status, _, resp = call(server.url, "/v1/jobs", data=body, method="POST",
                           headers={"Content-Type": "application/json"})
    assert status == 202
    job_id = json.loads(resp)["id"]
    assert wait_state(server.url, job_id)["state"] == "done"
    status, headers, png = call(server.url, f"/v1/jobs/{job_id}/result")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(png)).size == (8, 6)


def test_a_sent_files_profile_reaches_the_runner_and_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ProPhoto file sent to the bridge is relit at its gamma (the default runner hands the backend
    ``SourceImage.tone``) and comes back carrying its profile."""
    import struct

    # a gamma-1.8 profile: LittleCMS's sRGB profile with its three curves swapped for ``curv`` 1.8
    from PIL import ImageCms

    from icportrait_studio.imaging.icc_profile import read_tags
    from icportrait_studio.plugins import bridge_server

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    tags = read_tags(bytes(icc))
    assert tags is not None
    for sig in (b"rTRC", b"gTRC", b"bTRC"):
        off = tags[sig][0]
        icc[off : off + 14] = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, round(1.8 * 256))
    seen: list[object] = []

    class Backend:
        def run(self, request, source, progress, cancel):  # type: ignore[no-untyped-def]
            seen.append(source.tone)
            return type("R", (), {"image": source.rgb * 0.5, "alpha": None})()

    monkeypatch.setattr("icportrait_studio.pipeline.registry.get_backend", lambda name: Backend())
    srv = BridgeServer(port=0, token=TOKEN, runner=bridge_server.default_runner, max_body=64 * 1024)
    srv.start_in_thread()
    try:
        buf = io.BytesIO()
        Image.fromarray(np.full((6, 8, 3), 200, np.uint8)).save(buf, "PNG", icc_profile=bytes(icc))
        body = json.dumps({"image": base64.b64encode(buf.getvalue()).decode(), "content_type": "image/png",
                           "rig": {"lights": [{"azimuth": 30}]}}).encode()
        status, _, resp = call(srv.url, "/v1/jobs", data=body, method="POST",
                               headers={"Content-Type": "application/json"})
        assert status == 202
        assert wait_state(srv.url, json.loads(resp)["id"])["state"] == "done"
        status, _, png = call(srv.url, f"/v1/jobs/{json.loads(resp)['id']}/result")
        assert status == 200 and Image.open(io.BytesIO(png)).info.get("icc_profile") == bytes(icc)
    finally:
        srv.stop()
    assert seen and seen[0] == pytest.approx(1.8, abs=0.01)


@pytest.mark.slow
def test_fifty_concurrent_jobs_all_complete_with_the_real_engine(sample_path: Path) -> None:
    import aiohttp

    img = Image.open(sample_path).convert("RGB").resize((96, 96))
    px = np.asarray(img.convert("RGBA")).tobytes()
    srv = BridgeServer(port=0, token=TOKEN)  # the default runner: the physical backend
    srv.start_in_thread()
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def one(session: aiohttp.ClientSession, i: int) -> bytes:
        preset = ("loop", "rembrandt", "butterfly", "split")[i % 4]
        async with session.post(srv.url + "/v1/jobs", data=px, headers={**auth, **raw_job(96, 96, preset)}) as r:
            assert r.status == 202, await r.text()
            job_id = (await r.json())["id"]
        async with session.get(f"{srv.url}/v1/jobs/{job_id}/events", headers=auth) as r:
            events = [json.loads(line[6:]) async for line in r.content if line.startswith(b"data: ")]
        assert events[-1]["state"] == "done", events[-1]
        async with session.get(f"{srv.url}/v1/jobs/{job_id}/result", headers=auth) as r:
            assert r.status == 200
            return await r.read()

    async def main() -> list[bytes]:
        async with aiohttp.ClientSession() as session:
            return await asyncio.gather(*(one(session, i) for i in range(50)))

    try:
        results = asyncio.run(main())
    finally:
        srv.stop()
    assert len(results) == 50 and all(len(r) == 96 * 96 * 4 for r in results)
    assert len({r for r in results}) == 4  # one distinct result per preset, identical for identical requests
    assert any(np.abs(np.frombuffer(r, np.uint8).astype(int) - np.frombuffer(px, np.uint8)).mean() > 2 for r in results)


@pytest.mark.parametrize("server", [SlowRunner()], indirect=True)
def test_progress_streams_and_a_cancelled_job_stops(server: BridgeServer) -> None:
    runner: SlowRunner = server._runner  # type: ignore[assignment]
    px = b"\x80" * (8 * 8 * 4)
    first = json.loads(call(server.url, "/v1/jobs", data=px, method="POST", headers=raw_job(8, 8))[2])["id"]
    queued = json.loads(call(server.url, "/v1/jobs", data=px, method="POST", headers=raw_job(8, 8))[2])["id"]
    assert runner.started.wait(10)
    time.sleep(0.2)  # let it make some progress
    status, _, body = call(server.url, f"/v1/jobs/{first}", method="DELETE")
    assert status == 202 and json.loads(body)["cancelled"] is True
    st = wait_state(server.url, first)
    assert st["state"] == "cancelled"
    assert runner.done_steps and runner.done_steps[0] < runner.steps  # it stopped, it did not run to the end
    assert call(server.url, f"/v1/jobs/{first}/result")[0] == 409
    # The next job runs, and its progress streams until it ends.
    status, headers, stream = call(server.url, f"/v1/jobs/{queued}/events")
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in stream.splitlines() if line.startswith(b"data: ")]
    progress = [e["progress"] for e in events if e["state"] == "running"]
    assert len(progress) >= 3 and progress == sorted(progress)
    assert events[-1]["state"] == "done" and events[-1]["progress"] == 1.0
    assert call(server.url, f"/v1/jobs/{queued}/cancel", method="POST")[0] == 202  # too late: stays done
    assert wait_state(server.url, queued)["state"] == "done"


def test_stopping_ends_running_jobs_and_open_streams() -> None:
    runner = SlowRunner(steps=1000, step_s=0.02)  # 20 s if nobody stopped it
    srv = BridgeServer(port=0, token=TOKEN, runner=runner)
    srv.start_in_thread()
    job_id = json.loads(call(srv.url, "/v1/jobs", data=b"\0" * 64, method="POST", headers=raw_job(4, 4))[2])["id"]
    assert runner.started.wait(10)
    streamed: list[bytes] = []
    reader = threading.Thread(target=lambda: streamed.append(call(srv.url, f"/v1/jobs/{job_id}/events")[2]))
    reader.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    srv.stop()
    reader.join(10)
    assert time.monotonic() - t0 < 8 and not reader.is_alive()
    assert runner.done_steps and runner.done_steps[0] < runner.steps
    assert streamed and b"running" in streamed[0]
