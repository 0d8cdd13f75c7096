"""Serve the dashboard with uvicorn on a socket bound first, so port 0 gives a real port.

``okr ui`` runs it in the foreground; ``okr serve`` runs it in a thread beside the flow's
schedule. Binding the socket before uvicorn starts lets the caller print the address the
dashboard really listens on (a free port when 0 was asked), and fail with a clear message
when the port is taken.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from okr_pipeline.okr_core.errors import ConfigError

__all__ = ["DashboardServer", "bind"]


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: a free port).

    Raises:
        ConfigError: The address is taken or cannot be used, with how to pick another.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family = infos[0][0] if infos else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        raise ConfigError(
            f"Cannot listen on {host}:{port} for the dashboard: {exc.strerror or exc}; "
            "choose another port with OKR_UI__PORT (or okr ui --port; 0: any free one), "
            "or serve without it (okr serve --no-ui)."
        ) from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
    return f"http://{shown}:{port}"


class DashboardServer:
    """A uvicorn server for the app on an already bound socket.

    Args:
        app: The dashboard (``create_app``).
        host: The address to listen on.
        port: The port; 0 for any free one.
    """

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.socket = bind(host, port)
        self.url = _url(self.socket)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve in the foreground until interrupted (Ctrl-C)."""
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def start(self, on_error: Callable[[BaseException], None] | None = None) -> None:
        """Serve in a background thread (daemon); :meth:`stop` ends it."""

        def target() -> None:
            try:
                # Signal handlers belong to the main thread; uvicorn installs none here.
                asyncio.run(self._server.serve(sockets=[self.socket]))
            except BaseException as exc:  # noqa: BLE001 - reported to the caller
                if on_error is not None:
                    on_error(exc)

        self._thread = threading.Thread(target=target, name="okr-dashboard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the server to finish and wait for it (a few seconds at most)."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.socket.close()
