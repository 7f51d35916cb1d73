"""``icportrait bridge serve``: the live bridge for the Krita, GIMP and Photoshop host plugins.

Loopback only, token-protected (see ``plugins.bridge_server``). Prints the URL and where the token is;
the Krita and GIMP plug-ins read both from the config folder, the Photoshop panel needs the token
pasted once (``icportrait bridge token --show``).
"""

from __future__ import annotations

import argparse
import sys


def cmd_serve(args: argparse.Namespace) -> int:
    from icportrait_studio.plugins.bridge_config import BridgeSecurityError, state_path, token_path
    from icportrait_studio.plugins.bridge_server import BridgeServer
    from icportrait_studio.plugins.registry import default_registry

    default_registry()  # plugin backends and presets become available to bridge jobs
    try:
        server = BridgeServer(host=args.host, port=args.port, state_path=state_path(),
                              max_body=args.max_body * 1024 * 1024, allowed_origins=tuple(args.allow_origin or ()))
    except BridgeSecurityError as exc:
        print(f"icportrait bridge: error: {exc}", file=sys.stderr)
        return 2
    import asyncio

    async def run() -> None:
        url = await server.start()
        print(f"IC-Portrait bridge listening on {url}", flush=True)
        print(f"token: {token_path()} (send it as 'Authorization: Bearer <token>')", flush=True)
        print("press Ctrl+C to stop", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.close()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        print("bridge stopped", file=sys.stderr)
    except OSError as exc:
        print(f"icportrait bridge: error: cannot listen on {server.url}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from icportrait_studio.plugins.bridge_config import load_or_create_token, token_path

    token = load_or_create_token()
    print(token if args.show else token_path())
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("bridge", help="the live bridge for Krita, GIMP and Photoshop plugins")
    sub = p.add_subparsers(dest="bridge_command", required=True)
    s = sub.add_parser("serve", help="run the bridge server (loopback only) until Ctrl+C")
    # 47615 = bridge_config.DEFAULT_PORT, not imported so that `icportrait --help` stays fast
    s.add_argument("--port", type=int, default=47615,
                   help="TCP port (default 47615; 0 picks a free one)")
    s.add_argument("--host", default="127.0.0.1", help="loopback address to bind: 127.0.0.1 (default) or ::1")
    s.add_argument("--max-body", type=int, default=512, metavar="MB", help="largest request body (default 512 MB)")
    s.add_argument("--allow-origin", action="append", metavar="ORIGIN",
                   help="also accept requests carrying this Origin header (loopback origins always are)")
    s.set_defaults(func=cmd_serve)
    t = sub.add_parser("token", help="print where the bridge token is (or the token itself with --show)")
    t.add_argument("--show", action="store_true")
    t.set_defaults(func=cmd_token)
