"""Cache keys: the sha256 of a step's canonical resolved request.

The key covers model, provider, rendered prompts, params (seed included) and the *content* hashes
of the inputs, never upstream step definitions: an upstream step that re-runs and yields the same
bytes leaves its dependents cached (Bazel's early cutoff).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from wanflow._exceptions import StoreError
from wanflow._fs import canonical_json
from wanflow.pipelines.request import StepRequest

KEY_VERSION = 1


def key_material(request: StepRequest, provider_salt: str) -> dict[str, Any]:
    """Everything the cache key is computed from, as plain JSON data."""
    return {"wanflow_cache": KEY_VERSION, "request": request.canonical(), "provider_salt": provider_salt}


def cache_key(request: StepRequest, provider_salt: str) -> str:
    """The step's cache key; a value that cannot be hashed is a loud error, never a constant key."""
    try:
        text = canonical_json(key_material(request, provider_salt))
    except (TypeError, ValueError) as error:
        raise StoreError(f"step '{request.step_id}': its request cannot be hashed ({error})") from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def diff_requests(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Readable names of the fields that differ between two canonical requests.

    ``params.n: 2 -> 3`` for short values; just the name (``prompt``, ``inputs.images``) otherwise.
    """
    before, after = _flatten(old), _flatten(new)
    changes = []
    for name in sorted(set(before) | set(after)):
        was, now = before.get(name), after.get(name)
        if was == now:
            continue
        if isinstance(was, list) or isinstance(now, list) or len(_short(was)) + len(_short(now)) > 50:
            changes.append(name)
        else:
            changes.append(f"{name}: {_short(was)} -> {_short(now)}")
    return changes


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            flat.update(_flatten(item, name + "."))
        else:
            flat[name] = item
    return flat


def _short(value: Any) -> str:
    return "unset" if value is None else str(value)
