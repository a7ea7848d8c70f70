"""Run the simulator: on the command line (``wanflow sim``) or in a background thread for tests."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from wanflow._exceptions import UsageError
from wanflow.sim.app import create_app
from wanflow.sim.state import Knobs, SimState
from wanflow.sim.vtrix import GATEWAY_PREFIX


class _QuietDrops(logging.Filter):
    """Simulated connection drops are the point, not an error worth a traceback in the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionAbortedError))


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


def check_loopback(host: str) -> None:
    """The simulator only listens on this machine."""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise UsageError(f"the simulator listens on loopback only (127.0.0.1, ::1, localhost), not {host}")


def serve(host: str, port: int, knobs: Knobs, workdir: Path | None = None) -> None:
    """Serve until interrupted."""
    check_loopback(host)
    # Bind first, so a taken port is a plain error before anything is printed (uvicorn would log
    # and exit on its own); port 0 takes any free one.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError:
        listener.close()
        raise
    port = listener.getsockname()[1]
    app, state = create_app(knobs, workdir)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    print(f"wanflow sim: vtrix and DashScope on http://{host}:{port}", flush=True)
    print(f"  export VTRIX_BASE_URL=http://{host}:{port} VTRIX_API_KEY={knobs.keys[0]}", flush=True)
    if knobs.vtrix_dialect == "gateway":
        print(f"  vtrix speaks the gateway dialect: export VTRIX_GENERATION_URL=http://{host}:{port}{GATEWAY_PREFIX}",
              flush=True)
    print(f"  export DASHSCOPE_HTTP_BASE_URL=http://{host}:{port}/api/v1 DASHSCOPE_API_KEY={knobs.keys[0]}", flush=True)
    print(f"  stats: http://{host}:{port}/_sim/stats  results in {state.workdir}", flush=True)
    server.run(sockets=[listener])


class SimServer:
    """A simulator on a free loopback port in a background thread (``with SimServer() as sim:``)."""

    def __init__(self, knobs: Knobs | None = None, workdir: Path | None = None) -> None:
        self.app, self.state = create_app(knobs, workdir)
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="error",
                                                     access_log=False, lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, name="wanflow-sim", daemon=True)

    @property
    def port(self) -> int:
        return self._server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dashscope_url(self) -> str:
        return self.url + "/api/v1"

    @property
    def gateway_url(self) -> str:
        """vtrix's gateway host in the gateway dialect (the vendor CLI's VTRIX_GENERATION_URL)."""
        return self.url + GATEWAY_PREFIX

    def __enter__(self) -> SimServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the simulator did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def stats(self) -> dict[str, Any]:
        return self.state.snapshot()


__all__ = ["Knobs", "SimServer", "SimState", "check_loopback", "serve"]
