"""Latency of a relight through the live bridge, against the same relight called directly.

    .venv/bin/python bench/bench_bridge.py [--size 1024] [--runs 10]

The bridge adds: the HTTP round trips (submit, poll, fetch), decoding the raw layer and encoding the
result. Everything runs on 127.0.0.1 (a server on a free loopback port, started and stopped here).
Prints readable figures, then one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from icportrait_studio import api
from icportrait_studio.imaging.color import decode_to_linear
from icportrait_studio.plugins.bridge_server import BridgeServer

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "samples" / "astronaut.png"
TOKEN = "bench-" + "x" * 40


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    img = Image.open(SAMPLE).convert("RGBA").resize((args.size, args.size))
    rgba = np.asarray(img)
    body = rgba.tobytes()
    rig = api.preset("rembrandt")

    rgb = decode_to_linear(np.ascontiguousarray(rgba[..., :3]))
    api.relight(rgb, rig, image_id="bench-direct")  # warm: analysis cached, like the bridge after its first job
    direct = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        api.relight(rgb, rig, image_id="bench-direct")
        direct.append((time.perf_counter() - t0) * 1000)

    server = BridgeServer(port=0, token=TOKEN)
    url = server.start_in_thread()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    job_header = json.dumps({"preset": "rembrandt", "raw": {"width": args.size, "height": args.size, "order": "rgba"}})

    def round_trip() -> float:
        t0 = time.perf_counter()
        req = urllib.request.Request(url + "/v1/jobs", data=body, method="POST", headers={
            **auth, "Content-Type": "application/octet-stream", "X-ICPortrait-Job": job_header})
        job_id = json.loads(opener.open(req, timeout=120).read())["id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            st = json.loads(opener.open(urllib.request.Request(f"{url}/v1/jobs/{job_id}", headers=auth)).read())
            if st["state"] not in ("queued", "running"):
                break
            time.sleep(0.002)
        assert st["state"] == "done", st
        opener.open(urllib.request.Request(f"{url}/v1/jobs/{job_id}/result", headers=auth)).read()
        return (time.perf_counter() - t0) * 1000

    try:
        first = round_trip()  # includes the face analysis of this image
        bridged = [round_trip() for _ in range(args.runs)]
    finally:
        server.stop()
    out = {"size": args.size, "runs": args.runs, "direct_ms_median": round(statistics.median(direct), 1),
           "bridge_ms_median": round(statistics.median(bridged), 1), "bridge_first_ms": round(first, 1)}
    out["overhead_ms_median"] = round(out["bridge_ms_median"] - out["direct_ms_median"], 1)
    print(f"{args.size}² relight, direct:        {out['direct_ms_median']:8.1f} ms (median of {args.runs})")
    print(f"{args.size}² relight, via bridge:    {out['bridge_ms_median']:8.1f} ms (submit, poll, fetch raw RGBA)")
    print(f"bridge overhead:               {out['overhead_ms_median']:8.1f} ms")
    print(f"first bridge job (analysis):   {out['bridge_first_ms']:8.1f} ms")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
