"""Which weights exactly: the identity of an open-weights model, part of its steps' cache keys.

A saved pipeline folder is identified by a content hash of its files. Hashing gigabytes on every
run would cost minutes, so each file's digest is kept in a stat-stamped index in the user's cache
folder (``weights-index.json``): a file whose size, mtime and inode are unchanged is not read
again, and new weights at the same path get a new identity. A Hugging Face repo id is identified
by the commit its ``main`` ref resolves to in the local Hugging Face cache (read as files: no
client, no network), or ``unresolved`` when it is not downloaded yet.

The machine a step runs on changes its frames too (CUDA kernels and random streams are not the
CPU's; bfloat16 is not float32): ``machine`` resolves ``device: auto`` and ``dtype: auto`` to what
the run will use, and the cache key holds that (docs/decisions.md, "Open weights").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from wanflow._fs import atomic_write_json
from wanflow.catalog.spec import ModelSpec
from wanflow.project.locate import cache_dir

_CHUNK = 1 << 20
MACHINE_PARAMS = ("device", "dtype", "offload")  # where and how a step runs, not what it makes


def _stamp(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def folder_identity(folder: Path, index_path: Path | None = None) -> str:
    """``sha256:<hex>`` over every file's relative path and content digest in ``folder``."""
    index_path = index_path or cache_dir() / "weights-index.json"
    index: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        index = json.loads(index_path.read_text("utf-8"))
    changed = False
    combined = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.relative_to(folder).parts):
        stat = path.stat()
        key = str(path.resolve())
        known = index.get(key)
        if isinstance(known, dict) and known.get("stamp") == _stamp(stat):
            digest = str(known["sha256"])
        else:
            digest = _file_digest(path)
            index[key] = {"stamp": _stamp(stat), "sha256": digest}
            changed = True
        combined.update(f"{path.relative_to(folder).as_posix()}\0{digest}\n".encode())
    if changed:
        with contextlib.suppress(OSError):  # an unwritable cache only costs a rehash next time
            index_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(index_path, index, durable=False, compact=True)
    return f"sha256:{combined.hexdigest()}"


def hub_cache_dir(environ: dict[str, str] | None = None) -> Path:
    """The Hugging Face hub cache folder, as huggingface_hub finds it."""
    env = environ if environ is not None else dict(os.environ)
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    home = Path(env["HF_HOME"]).expanduser() if env.get("HF_HOME") else Path.home() / ".cache" / "huggingface"
    return home / "hub"


def repo_identity(repo: str) -> str:
    """``hf:<repo>@<commit>`` from the local hub cache, ``hf:<repo>@unresolved`` when not downloaded."""
    ref = hub_cache_dir() / f"models--{repo.replace('/', '--')}" / "refs" / "main"
    try:
        commit = ref.read_text("utf-8").strip()
    except OSError:
        commit = "unresolved"
    return f"hf:{repo}@{commit or 'unresolved'}"


def with_identity(model: ModelSpec) -> ModelSpec:
    """``model`` with its weights' identity filled in (unchanged for a service model)."""
    weights = model.open_weights
    if weights is None or weights.identity is not None:
        return model
    source = Path(weights.source)
    identity = folder_identity(source) if weights.is_folder else repo_identity(weights.source)
    return replace(model, open_weights=replace(weights, identity=identity))


def resolve_device(name: str) -> str:
    """``auto``: the first CUDA GPU, else Apple's MPS, else the CPU; any other name as written.

    Only ``auto`` imports torch; without torch it stays ``auto`` (no run can happen then: the
    missing extra is an error before anything runs)."""
    if name != "auto":
        return name
    try:
        import torch
    except ImportError:
        return "auto"
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(name: str, device: str) -> str:
    """``auto``: bfloat16 on a GPU (Wan's training precision), float32 on the CPU."""
    if name != "auto":
        return name
    return "float32" if device == "cpu" else "bfloat16"


def machine(params: Mapping[str, Any]) -> dict[str, str]:
    """What of the machine changes an open-weights step's frames: the device's type (``cuda``,
    not ``cuda:1``: identical GPUs give identical frames) and the dtype, both resolved."""
    device = resolve_device(str(params.get("device", "auto")))
    return {"device": device.split(":", 1)[0], "dtype": resolve_dtype(str(params.get("dtype", "auto")), device)}
