"""Media inputs as the services take them: an http(s) URL, a ``data:`` URI, or (DashScope) ``oss://``.

The simulator can only "download" its own result URLs; anything else on the network is refused,
so a test can never reach outside the machine.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from wanflow._exceptions import MediaError
from wanflow._fs import atomic_write_bytes
from wanflow.artifacts import Artifact
from wanflow.media.probe import probe
from wanflow.sim.envelopes import Rejection
from wanflow.sim.state import SimState
from wanflow.sim.uploads import resolve_oss


@dataclass(frozen=True)
class Caller:
    """Who sent a create request, and how: what decoding an input depends on."""

    protocol: str  # vtrix | dashscope
    api_key: str
    base_url: str
    oss_resolve: bool = False  # X-DashScope-OssResourceResolve: enable


def decode_media(value: Any, media: str, provider_model: str, caller: Caller, state: SimState) -> Artifact:
    """One input as a probed local file, or Rejection as the service would answer."""
    if not isinstance(value, str):
        raise Rejection(400, "InvalidParameter", "media must be a URL or a data: URI")
    if value.startswith("data:"):
        if media in ("audio", "video"):
            # Both services take audio and video by URL only (the i2v and r2v pages: "HTTP or HTTPS").
            raise Rejection(400, "InvalidParameter", f"{media} inputs must be an http(s) URL or an uploaded oss:// "
                                                     "file, not a data: URI")
        path, digest = _data_uri(value, state)
    elif value.startswith(("http://", "https://")):
        path = _own_url(value, caller.base_url, state)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        state.stats["inputs_by_url"] += 1
    elif value.startswith("oss://") and caller.protocol == "dashscope":
        path = resolve_oss(state, value, provider_model, caller.api_key, caller.oss_resolve)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    else:
        raise Rejection(400, "InvalidParameter", "media must be an http(s) URL or a data: URI")
    try:
        info = probe(path)
    except MediaError as error:
        raise Rejection(400, "InvalidParameter", str(error)) from None
    return Artifact(digest, info.media_type, path.stat().st_size, Path(path), **info.as_meta())  # type: ignore[arg-type]


def _data_uri(value: str, state: SimState) -> tuple[Path, str]:
    header, _, encoded = value.partition(",")
    if ";base64" not in header:
        raise Rejection(400, "InvalidParameter", "data: URIs must be base64")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Rejection(400, "InvalidParameter", "invalid base64 data") from None
    digest = hashlib.sha256(data).hexdigest()
    state.stats["inputs_by_data_uri"] += 1
    path = state.workdir / "inputs" / digest
    if not path.exists():  # written atomically: concurrent requests may carry the same bytes
        atomic_write_bytes(path, data, durable=False)
    return path, digest


def _own_url(value: str, base_url: str, state: SimState) -> Path:
    """One of the simulator's own result URLs (the only URLs it can fetch)."""
    parts = urlparse(value).path.split("/")
    if not value.startswith(base_url) or len(parts) < 4 or parts[1:3] != ["_sim", "files"]:
        raise Rejection(400, "InvalidURL", f"the simulator cannot download {value[:80]}")
    file = state.file(parts[3])
    if file is None:
        raise Rejection(400, "InvalidURL", "url not found")
    if file.expires_at < time.time():
        raise Rejection(400, "InvalidURL", "url expired")
    return file.path
