"""Shared bits of the simulator tests: a running simulator, small media, polling."""

from __future__ import annotations

import base64
import io
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
AUTH = {"Authorization": f"Bearer {KEY}"}
ASYNC = {**AUTH, "X-DashScope-Async": "enable"}
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
