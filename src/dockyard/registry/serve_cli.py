"""Flags and entry point of ``dockyard registry serve``.

Wiring into the main CLI is one line per function::

    p = registry_sub.add_parser("serve", help="Serve an OCI distribution registry")
    serve_cli.add_arguments(p); p.set_defaults(func=serve_cli.run)

Nothing heavy is imported until ``run``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def default_root() -> Path:
    """``$DOCKYARD_REGISTRY_ROOT``, else /var/lib/dockyard/registry for root, else the XDG data dir."""
    env = os.environ.get("DOCKYARD_REGISTRY_ROOT")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/dockyard/registry")
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "dockyard" / "registry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--addr", default="127.0.0.1:5000",
                        help="address to listen on: HOST:PORT, :PORT for all interfaces, port 0 for any "
                             "free port (default %(default)s)")
    parser.add_argument("--root", type=Path, default=None,
                        help="directory holding the registry's data (default $DOCKYARD_REGISTRY_ROOT, "
                             "/var/lib/dockyard/registry as root, else ~/.local/share/dockyard/registry)")
    parser.add_argument("--htpasswd", type=Path, default=None, metavar="FILE",
                        help="require HTTP Basic auth with the users of this htpasswd file "
                             "(bcrypt, apr1 or SHA entries)")
    parser.add_argument("--tls-cert", type=Path, default=None, metavar="FILE",
                        help="serve HTTPS with this PEM certificate (chain)")
    parser.add_argument("--tls-key", type=Path, default=None, metavar="FILE",
                        help="the PEM private key of --tls-cert")
    parser.add_argument("--log-level", default="info", choices=LOG_LEVELS, type=str.lower,
                        help="log verbosity (default %(default)s; info logs every request)")


def run(args: argparse.Namespace) -> int:
    from dockyard.registry.server import serve

    serve(
        args.addr,
        root=args.root if args.root is not None else default_root(),
        htpasswd=args.htpasswd,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        log_level=args.log_level,
    )
    return 0
