"""`vaekit serve RUN`: an interactive latent-space explorer in the browser (see `vaekit.serve.app`)."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from ..errors import ConfigError
from .explorer import Explorer, RequestError

log = logging.getLogger(__name__)

__all__ = ["Explorer", "RequestError", "create_app", "serve", "open_socket"]


def create_app(explorer: Explorer):
    """The Starlette app of `explorer` (needs the `serve` extra: starlette, uvicorn, plotly)."""
    require_web_stack()
    from .app import create_app as build

    return build(explorer)


def require_web_stack() -> None:
    """A one-line ConfigError naming what to install when starlette, uvicorn or plotly is missing."""
    import importlib.util

    missing = [m for m in ("starlette", "uvicorn", "plotly") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"vaekit serve needs {', '.join(missing)}: pip install 'vaekit[serve]'")


def open_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one), or a ConfigError saying why not."""
    if not host.strip():  # an empty address would listen on every interface: often an unset shell variable
        raise ConfigError("the host is empty: give an address (127.0.0.1 for this machine only, 0.0.0.0 to listen "
                          "on every interface)")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Connections accepted from it inherit TCP_NODELAY: a response's headers and body, written separately,
        # then leave at once instead of the body waiting ~40 ms for the client's delayed ACK (Nagle's algorithm).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError as error:
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    sock.listen(128)
    return sock


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 0, split: str | None = None,
          max_points: int = 2000, data_root: str | None = None, announce=print, device: str = "cpu") -> None:
    """Serves the explorer of `run_dir` (its model on `device`) until interrupted (Ctrl-C), announcing its
    address first."""
    require_web_stack()
    import uvicorn

    sock = open_socket(host, port)  # first: a busy port or a bad address fails before the run is loaded
    try:
        explorer = Explorer(run_dir, split=split, max_points=max_points, data_root=data_root, device=device)
        app = create_app(explorer)
    except BaseException:
        sock.close()
        raise
    address = sock.getsockname()
    shown = f"[{address[0]}]" if ":" in address[0] else address[0]
    announce(f"vaekit serve: exploring {explorer.run_dir} at http://{shown}:{address[1]}/  (Ctrl-C stops)")
    # Ctrl-C: open keep-alive connections (a browser holds some) get a second to finish, not uvicorn's wait for them
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn has shut down cleanly and passes the Ctrl-C on: the normal way to stop
        pass
    finally:
        sock.close()
    announce("vaekit serve: stopped")
