"""Client for the IC-Portrait Studio live bridge, standard library only (runs inside Krita's and GIMP's Python).

The same file ships in ``plugins/krita/icportrait_bridge/`` and ``plugins/gimp/icportrait-bridge/`` (each
host plugin must be installable on its own); a test keeps the two copies identical.

Finding the bridge: ``ICPORTRAIT_BRIDGE_URL``/``ICPORTRAIT_BRIDGE_TOKEN`` if set, else ``bridge.json``
(written by a running bridge) and ``bridge_token`` in IC-Portrait Studio's config folder. The client only
ever talks to a loopback address: a tampered ``bridge.json`` cannot send the layer or the token elsewhere.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

DEFAULT_PORT = 47615
APP_DIR_NAME = "icportrait-studio"


class BridgeError(Exception):
    """Something a user should read: the bridge is not running, the token is wrong, the job failed."""


def config_dir() -> str:
    """IC-Portrait Studio's config folder (the same rules as ``icportrait_studio.core.project.config_dir``)."""
    env = os.environ.get("ICPORTRAIT_CONFIG_DIR")
    if env:
        return env
    home = os.path.expanduser("~")
    if sys.platform == "win32":
        return os.path.join(os.environ.get("APPDATA") or os.path.join(home, "AppData", "Roaming"),
                            "IC-Portrait Studio")
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Application Support", "IC-Portrait Studio")
    return os.path.join(os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), APP_DIR_NAME)


def _is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BridgeClient:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        if not _is_loopback_url(url):
            raise BridgeError(f"refusing to talk to {url}: the IC-Portrait bridge is always on this machine")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        # No proxies: an HTTP_PROXY setting must never see the token or the image.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @classmethod
    def from_environment(cls, timeout: float = 30.0) -> BridgeClient:
        folder = config_dir()
        url = os.environ.get("ICPORTRAIT_BRIDGE_URL")
        if not url:
            try:
                with open(os.path.join(folder, "bridge.json"), encoding="utf-8") as fh:
                    url = json.load(fh)["url"]
            except (OSError, ValueError, KeyError):
                url = f"http://127.0.0.1:{DEFAULT_PORT}"
        token = os.environ.get("ICPORTRAIT_BRIDGE_TOKEN")
        if not token:
            try:
                with open(os.path.join(folder, "bridge_token"), encoding="ascii") as fh:
                    token = fh.read().strip()
            except OSError:
                raise BridgeError("no bridge token found: start IC-Portrait Studio's bridge once "
                                  "(icportrait bridge serve)") from None
        return cls(url, token, timeout)

    def _request(self, method: str, path: str, body: bytes | None = None,
                 headers: dict | None = None) -> tuple[int, dict, bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers={"Authorization": f"Bearer {self.token}", **(headers or {})})
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            with contextlib.suppress(ValueError):
                detail = json.loads(detail).get("error", detail)
            if exc.code == 401:
                raise BridgeError("the bridge refused the token (reinstall the token, or restart the bridge)") from None
            raise BridgeError(f"bridge error {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise BridgeError(f"IC-Portrait Studio's bridge is not reachable at {self.url} ({exc}); "
                              "start it with: icportrait bridge serve") from None

    def _json(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> dict:
        return json.loads(self._request(method, path, body, headers)[2].decode("utf-8"))

    def info(self) -> dict:
        return self._json("GET", "/v1/info")

    def presets(self) -> list:
        return [p["name"] for p in self._json("GET", "/v1/presets").get("presets", [])]

    def submit_raw(self, data: bytes, width: int, height: int, *, order: str = "rgba", bit_depth: int = 8,
                   max_value: int = 0, params: dict | None = None) -> str:
        job = dict(params or {})
        job["raw"] = {"width": width, "height": height, "order": order, "bit_depth": bit_depth,
                      "max_value": max_value}
        headers = {"Content-Type": "application/octet-stream", "X-ICPortrait-Job": json.dumps(job)}
        return self._json("POST", "/v1/jobs", bytes(data), headers)["id"]

    def status(self, job_id: str) -> dict:
        return self._json("GET", f"/v1/jobs/{job_id}")

    def result_raw(self, job_id: str) -> bytes:
        """The result in the layout it was submitted in."""
        return self._request("GET", f"/v1/jobs/{job_id}/result?format=raw")[2]

    def cancel(self, job_id: str) -> None:
        self._request("DELETE", f"/v1/jobs/{job_id}")

    def wait(self, job_id: str, timeout: float = 600.0, poll: float = 0.2, on_progress=None) -> dict:
        """Poll until the job ends (at most ``timeout`` seconds; then it is cancelled)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status(job_id)
            if on_progress is not None:
                on_progress(float(st.get("progress", 0.0)), st.get("stage", ""))
            if st["state"] not in ("queued", "running"):
                return st
            time.sleep(poll)
        self.cancel(job_id)
        raise BridgeError(f"the relight did not finish within {timeout:.0f} s")
