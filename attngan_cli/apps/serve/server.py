"""Running the application with uvicorn on a socket bound here first, so a port in use is a clear error
before anything starts, and ``--port 0`` takes a free port (printed). Ctrl-C (SIGINT) or SIGTERM stops
uvicorn, which finishes the requests in flight, and the batchers stop with the application."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence

import uvicorn

from attngan_cli.apps.serve.app import create_app
from attngan_cli.apps.serve.engine import ServedModel, ServeSettings
from attngan_cli.core.errors import InputError, Terminated

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; :class:`InputError` naming the flag when it cannot be had."""
    if not 0 <= port <= 65535:
        raise InputError(f"--port must be between 0 and 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise InputError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise InputError(f"--port {port} is in use on {host}; choose another, or --port 0 for a free one") from None
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class _Server(uvicorn.Server):
    """uvicorn's server, except that a Ctrl-C or SIGTERM it shut down for is raised after the event loop
    has ended (as :class:`KeyboardInterrupt` / :class:`Terminated`), not re-sent to the process inside the
    loop, where asyncio turns it into a traceback of the tasks still being cancelled."""

    signals: list[int]

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        self.signals = []
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: object) -> None:
        self.signals.append(sig)
        self.handle_exit(sig, frame)  # type: ignore[arg-type]


def serve(models: Sequence[ServedModel], settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve ``models`` until Ctrl-C / SIGTERM. ``on_ready(url)`` is called once the socket listens (before
    uvicorn starts accepting)."""
    app = create_app(models, settings)
    sock = bind(host, port)
    url = url_of(sock)
    if is_loopback(host):
        log.info("listening on %s only (this machine); --host 0.0.0.0 makes it reachable from others", url)
    else:
        log.warning("listening on %s: reachable from other machines, with no authentication", url)
    if on_ready is not None:
        on_ready(url)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=10)
    server = _Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        log.info("stopped (the requests in flight were answered)")
    if signal.SIGTERM in server.signals:
        raise Terminated()
    if signal.SIGINT in server.signals:
        raise KeyboardInterrupt
