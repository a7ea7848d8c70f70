"""Running the ``wanflow`` command against a simulator, as a user would: a fresh process, the
simulator's URLs and key in its environment, ``--json`` read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from wanflow.sim.server import SimServer

SRC = str(Path(__file__).resolve().parent.parent / "src")
KEY = "sim-key"


def cli_env(server: SimServer, key: str = KEY, **extra: str) -> dict[str, str]:
    """This environment without wanflow's and the services' settings, pointed at ``server``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("DASHSCOPE", "VTRIX", "WANFLOW"))}
    return {**env, "PYTHONPATH": SRC, "DASHSCOPE_HTTP_BASE_URL": server.dashscope_url, "DASHSCOPE_API_KEY": key,
            "VTRIX_BASE_URL": server.url, "VTRIX_API_KEY": key, "WANFLOW_POLL_INTERVAL": "0.05",
            "WANFLOW_CONFIG": "/nonexistent/wanflow.toml", **extra}


def wanflow_json(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 180) -> tuple[int, dict, str]:
    """Run ``wanflow ARGS --json``: (exit code, the JSON summary or {}, stderr)."""
    done = subprocess.run([sys.executable, "-m", "wanflow", *args, "--json"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    try:
        return done.returncode, json.loads(done.stdout), done.stderr
    except ValueError:
        return done.returncode, {}, done.stderr + done.stdout
