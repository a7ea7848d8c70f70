"""DashScope's temporary upload of local files, and the record of what is already uploaded.

The flow is the one the official SDK uses for every local file (``dashscope/utils/oss_utils.py``):

1. ``GET {base}/uploads?action=getPolicy&model=M`` (with the API key) answers an upload policy.
2. A multipart form ``POST`` to the storage host the policy names (without the API key) stores
   the file under ``upload_dir/<name>``.
3. The input is passed as ``oss://<key>``, and the create call carries
   ``X-DashScope-OssResourceResolve: enable``.

Uploaded files live about 48 hours. An ``UploadCache`` remembers them by content hash and model,
so a rerun within that time passes the same name instead of uploading again.
"""

from __future__ import annotations

import json
import mimetypes
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wanflow._exceptions import ProviderError
from wanflow.artifacts import Artifact
from wanflow.catalog.services import UploadSpec
from wanflow.pipelines.request import StepRequest

if TYPE_CHECKING:
    import httpx

    from wanflow.providers.base import UploadRecords

UPLOAD_SAFETY_MARGIN = 3600  # reuse an upload only while it has an hour to live
_POLICY_FIELDS = ("upload_host", "upload_dir", "policy", "signature", "oss_access_key_id")


class UploadCache:
    """``sha256 + model -> (oss:// name, expiry)``, kept in one JSON file per service."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, dict[str, Any]] | None = None

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            try:
                loaded = json.loads(self.path.read_text("utf-8"))
            except (OSError, ValueError, RecursionError):
                loaded = {}  # a missing or damaged record only costs an upload
            self._entries = loaded if isinstance(loaded, dict) else {}
        return self._entries

    def get(self, sha256: str, model: str, now: float | None = None) -> str | None:
        """The still-valid name of an earlier upload of these bytes for this model, or None."""
        entry = self._load().get(f"{sha256}:{model}")
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str) or \
                _expiry(entry) - UPLOAD_SAFETY_MARGIN <= (now or time.time()):
            return None  # a damaged record only costs an upload
        return entry["url"]

    def put(self, sha256: str, model: str, url: str, expires_at: float) -> None:
        """Remember an upload (and forget expired ones)."""
        from wanflow._fs import atomic_write_json  # the runner package imports the providers

        now = time.time()
        entries = {key: value for key, value in self._load().items()
                   if isinstance(value, dict) and _expiry(value) > now}
        entries[f"{sha256}:{model}"] = {"url": url, "expires_at": expires_at}
        self._entries = entries
        atomic_write_json(self.path, entries, durable=False)  # a lost record costs one upload, never money


GetJson = Callable[[str, dict[str, str]], Awaitable[Any]]
Backoff = Callable[[int, str], Awaitable[bool]]


async def upload_file(client: httpx.AsyncClient, get_json: GetJson, backoff: Backoff, spec: UploadSpec,
                      service: str, request: StepRequest, artifact: Artifact, cache: UploadRecords | None,
                      log: Callable[[str], None], model: str | None = None) -> str:
    """Upload ``artifact`` for ``request``'s model (or ``model``: an upload serves one model only)
    and return its ``oss://`` name.

    Nothing here creates a billable task, so every step may be retried; a failure is a clear
    ProviderError before the create call is sent.
    """
    import httpx  # here, not at the top: the runner imports UploadCache for every run, even a local one

    assert artifact.path is not None
    model = model or request.model.providers[service].model
    if cache is not None:
        known = cache.get(artifact.sha256, model)
        if known is not None:
            log(f"reusing the upload {known} of {artifact.sha256[:12]} (still valid)")
            return known
    payload = await get_json(spec.policy_path, {"action": "getPolicy", "model": model})
    policy = payload.get("data") or payload.get("output") if isinstance(payload, dict) else None
    if not isinstance(policy, dict) or any(not policy.get(name) for name in _POLICY_FIELDS):
        raise ProviderError(f"{service} answered the upload policy request without "
                            f"{', '.join(name for name in _POLICY_FIELDS if not isinstance(policy, dict) or not policy.get(name))}")
    name = artifact.sha256[:32] + (mimetypes.guess_extension(artifact.media_type) or "")
    key = f"{str(policy['upload_dir']).rstrip('/')}/{name}"
    form = {
        "OSSAccessKeyId": str(policy["oss_access_key_id"]),
        "Signature": str(policy["signature"]),
        "policy": str(policy["policy"]),
        "key": key,
        "x-oss-object-acl": str(policy.get("x_oss_object_acl", "private")),
        "x-oss-forbid-overwrite": str(policy.get("x_oss_forbid_overwrite", "true")),
        "success_action_status": "200",
        "x-oss-content-type": artifact.media_type,
    }
    host = str(policy["upload_host"])
    if not host.startswith(("http://", "https://")):
        raise ProviderError(f"{service} named an upload host that is not an http(s) URL: {host[:60]}")
    attempt = 0
    while True:
        attempt += 1
        try:
            with artifact.path.open("rb") as handle:
                # The storage host is not the API: it gets the signed policy, never the API key.
                response = await client.post(host, data=form, files={"file": (name, handle, artifact.media_type)})
        except httpx.TransportError as error:
            if await backoff(attempt, f"upload: {type(error).__name__}"):
                continue
            raise ProviderError(f"could not upload {artifact.origin or artifact.sha256[:12]} to {service}'s storage "
                                f"({type(error).__name__}); nothing was submitted", retryable=True) from None
        if response.status_code in (200, 201, 204):
            break
        if (response.status_code == 429 or response.status_code >= 500) and await backoff(
                attempt, f"upload: HTTP {response.status_code}"):
            continue
        raise ProviderError(f"{service}'s storage refused the upload with HTTP {response.status_code}: "
                            f"{response.text[:200]}; nothing was submitted")
    url = f"oss://{key}"
    expires_at = time.time() + spec.lifetime_hours * 3600
    log(f"uploaded {artifact.origin or artifact.sha256[:12]} as {url} (kept by the service for {spec.lifetime_hours:.0f} h)")
    if cache is not None:
        cache.put(artifact.sha256, model, url, expires_at)
    return url


def _expiry(entry: dict[str, Any]) -> float:
    """An upload record's expiry time; 0 (expired) when it is not a finite number."""
    value = entry.get("expires_at", 0)
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value and value != float("inf"):
        return float(value)
    return 0.0
