"""Where the live bridge keeps its token and address, and the loopback rules it enforces.

The token is per install: a random secret in ``<config>/bridge_token`` (mode 0600), created on first
use. Host plugins (Krita, GIMP) read it from the same place, the Photoshop panel asks the user to
paste it once. ``<config>/bridge.json`` says where a running server listens, so host plugins find it
without configuration. The host plugins repeat this lookup in plain Python (they cannot import
us), so keep the file names and the config-folder rules in step with ``plugins/*/bridge_client.py``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_PORT = 47615
TOKEN_FILE = "bridge_token"
STATE_FILE = "bridge.json"
LOOPBACK_NAMES = ("localhost",)


class BridgeSecurityError(ValueError):
    """A configuration the bridge refuses (e.g. binding to a non-loopback address)."""


def config_dir() -> Path:
    from icportrait_studio.core.project import config_dir as _config_dir

    return _config_dir()


def token_path() -> Path:
    return config_dir() / TOKEN_FILE


def state_path() -> Path:
    return config_dir() / STATE_FILE


def load_or_create_token(path: Path | None = None) -> str:
    """Read the install's token, creating it (owner-only permissions) the first time."""
    p = path or token_path()
    with contextlib.suppress(OSError):
        token = p.read_text(encoding="ascii").strip()
        if len(token) >= 32:
            return token
    token = secrets.token_urlsafe(32)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never world-readable, not even briefly
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(token + "\n")
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return token


def check_loopback_bind(host: str) -> str:
    """The address to bind, or ``BridgeSecurityError`` for anything that is not loopback-only.

    'localhost' becomes 127.0.0.1: a name can be made to resolve elsewhere, an address cannot."""
    h = host.strip().strip("[]")
    if h.lower() in LOOPBACK_NAMES:
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        raise BridgeSecurityError(f"the bridge binds to loopback addresses only; {host!r} is not one") from None
    if not ip.is_loopback:
        raise BridgeSecurityError(f"the bridge binds to loopback addresses only (127.0.0.1 or ::1), not {host}")
    return str(ip)


def is_loopback_hostname(host: str) -> bool:
    """For Host and Origin headers: localhost, 127.x.x.x or ::1 (defends against DNS rebinding)."""
    h = host.strip().lower()
    if h.startswith("["):
        h = h[1:h.find("]")] if "]" in h else h
    elif h.count(":") == 1:
        h = h.split(":", 1)[0]
    if h in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def is_allowed_origin(origin: str, extra: tuple[str, ...] = ()) -> bool:
    """Loopback web origins, and any the user allowed explicitly; 'null' and remote sites are refused."""
    if origin in extra:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and is_loopback_hostname(parts.hostname or "")


def write_state(url: str, port: int, path: Path | None = None) -> Path:
    from icportrait_studio.imaging.atomic import atomic_write_text

    p = path or state_path()
    atomic_write_text(p, json.dumps({"url": url, "port": port, "pid": os.getpid(), "token_file": str(token_path())}))
    return p


def clear_state(path: Path | None = None) -> None:
    """Remove the state file if it still describes this process."""
    p = path or state_path()
    with contextlib.suppress(OSError, ValueError):
        if json.loads(p.read_text(encoding="utf-8")).get("pid") == os.getpid():
            p.unlink()
