"""Shared bits of the simulator tests: a running simulator, small media, polling."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import time
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from wanflow.sim.server import SimServer
from wanflow.sim.state import Knobs

KEY = "sim-key"
SECRET = "sk-wanflow-test-SECRET-0123456789"  # the paid tests' key: it must never appear in what a run writes
AUTH = {"Authorization": f"Bearer {KEY}"}
ASYNC = {**AUTH, "X-DashScope-Async": "enable"}

# Two paid steps, an image and its edit: the shape most recovery and sharing tests run.
TWO_STEPS = """
name: paid
vars: {trial: 0}
defaults: {seed: 5}
steps:
  hero: {model: wan2.6-t2i, prompt: "trial {{ vars.trial }}: a lamp", params: {n: 1}}
  edit: {model: wan2.6-image, images: ["{{ steps.hero.images[0] }}"], prompt: "make it glow {{ vars.trial }}", params: {n: 1}}
outputs: {final: "{{ steps.edit.images[0] }}"}
"""
VTRIX_CREATE = "/model/v1/generation"
T2I_PATH = "/services/aigc/image-generation/generation"
I2V_PATH = "/services/aigc/video-generation/video-synthesis"
SYNC_PATH = "/services/aigc/multimodal-generation/generation"
# Rendering a video preview on the poll that finds it done takes seconds on a busy machine.
TIMEOUT = httpx.Timeout(60.0)


@contextmanager
def running(workdir: Path, **knobs: Any) -> Iterator[SimServer]:
    """A simulator on a free loopback port with fast tasks unless told otherwise."""
    knobs.setdefault("task_seconds", 0.2)
    knobs.setdefault("seed", 7)
    with SimServer(Knobs(**knobs), workdir=workdir / "sim") as sim:
        yield sim


class SimStarter:
    """Starts simulators that accept ``SECRET`` (one task per 0.6 s, seed 1, unless told otherwise)
    under ``workdir/sim``, and stops them all at ``close``: the ``sim`` fixture of the paid tests."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.servers: list[SimServer] = []

    def __call__(self, **knobs: Any) -> SimServer:
        knobs.setdefault("task_seconds", 0.6)
        knobs.setdefault("seed", 1)
        server = SimServer(Knobs(keys=(SECRET,), **knobs), workdir=self.workdir / "sim")
        self.servers.append(server.__enter__())
        return server

    def close(self) -> None:
        for server in self.servers:
            server.__exit__(None, None, None)


def png_bytes(width: int = 640, height: int = 480, color: tuple[int, int, int] = (200, 50, 50)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(width: int = 640, height: int = 480) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(width, height)).decode()


def wav_bytes(seconds: float = 4.0, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x01" * int(seconds * rate))
    return buffer.getvalue()


def messages(text: str, *images: str) -> dict[str, Any]:
    """A documented ``input`` with one user message."""
    return {"messages": [{"role": "user", "content": [{"text": text}, *({"image": image} for image in images)]}]}


def t2i(model: str = "wan26_t2i", **parameters: Any) -> dict[str, Any]:
    return {"model": model, "input": messages("a red fox in snow"), "parameters": {"n": 1, **parameters}}


def poll(url: str, done: Callable[[dict[str, Any]], bool], headers: dict[str, str] | None = None,
         timeout: float = 30.0, interval: float = 0.03) -> list[dict[str, Any]]:
    """Every body seen while polling ``url`` until ``done(body)``; the last one is the finished body."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = httpx.get(url, headers=headers or AUTH, timeout=TIMEOUT)
        assert answer.status_code == 200, answer.text
        seen.append(answer.json())
        if done(seen[-1]):
            return seen
        time.sleep(interval)
    raise AssertionError(f"not done after {timeout} s; last body: {seen[-1] if seen else None}")


# --- whole paid runs through the CLI, one project folder per "laptop" ---------------------------------

def project_folder(parent: Path, name: str, pipeline: str, toml: str = "") -> Path:
    """A project folder ``parent/name`` with ``wanflow.toml`` and ``pipe.yaml``."""
    folder = parent / name
    folder.mkdir()
    (folder / "wanflow.toml").write_text(toml)
    (folder / "pipe.yaml").write_text(pipeline)
    return folder


def start_run(folder: Path, env: dict[str, str], *extra: str, pipeline: str = "pipe.yaml",
              new_session: bool = False) -> subprocess.Popen[str]:
    """``wanflow run PIPELINE --provider dashscope --json EXTRA`` in ``folder``, not waited for
    (``new_session``: in its own process group, which a test may signal as a terminal's Ctrl-C does)."""
    return subprocess.Popen([sys.executable, "-m", "wanflow", "run", pipeline, "--provider", "dashscope", "--json", *extra],
                            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=new_session)


def finish_run(process: subprocess.Popen[str], timeout: float = 240) -> dict[str, Any]:
    """The JSON summary of a run that must succeed."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err + out
    summary: dict[str, Any] = json.loads(out)
    return summary


def lock_keys(lock: dict[str, Any]) -> dict[str, str]:
    """Every ``cache_key`` in a lockfile, by its path in the document."""
    found: dict[str, str] = {}

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("cache_key"), str):
                found[path] = node["cache_key"]
            for name, value in node.items():
                walk(value, f"{path}/{name}")

    walk(lock, "")
    return found


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, interval: float = 0.05) -> None:
    """Wait until ``condition()`` holds (a test's synchronisation with another process, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not true after {timeout} s"
        time.sleep(interval)


def point_providers_at(monkeypatch: Any, server: SimServer, key: str = KEY) -> None:
    """Point both paid providers at ``server`` with ``key`` (the environment a user would export)."""
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", server.dashscope_url)
    monkeypatch.setenv("DASHSCOPE_API_KEY", key)
    monkeypatch.setenv("VTRIX_BASE_URL", server.url)
    monkeypatch.setenv("VTRIX_API_KEY", key)
