"""Mending a cached result whose stored object is damaged or missing, from its result URL.

A paid result's cache entry keeps the service URL of every output (``result_urls``) and when its
task ended. While that URL is still valid (24 hours from the task's end), a damaged or missing
object is downloaded again, verified against its recorded hash, and stored: no new task is paid
for. Past that, the step runs again as before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from wanflow.state.store import ArtifactStore

URL_LIFETIME = 24 * 3600
MARGIN = 600  # do not start a download the URL may not outlive


def repairable_objects(entry_path: Path, store: ArtifactStore, workdir: Path) -> list[tuple[dict[str, Any], str]]:
    """(output record, URL) of each damaged or missing object of a cache entry, when every one of
    them can still be fetched from its result URL; [] when there is nothing to mend or no way to."""
    try:
        entry = json.loads(entry_path.read_text("utf-8"))
        info, outputs = entry.get("provider") or {}, entry.get("outputs") or {}
    except (OSError, ValueError, AttributeError):
        return []
    ended = info.get("task_ended_at")
    urls = info.get("result_urls") or {}
    if not isinstance(ended, (int, float)) or time.time() > ended + URL_LIFETIME - MARGIN or not urls:
        return []
    records = [*outputs.get("images", []), *(outputs[name] for name in ("video", "text") if outputs.get(name))]
    broken = [record for record in records if not store.is_intact(record["sha256"], record["size"])]
    if not broken or any(record["sha256"] not in urls for record in broken):
        return []
    workdir.mkdir(parents=True, exist_ok=True)
    return [(record, str(urls[record["sha256"]])) for record in broken]


async def repair_from_urls(broken: list[tuple[dict[str, Any], str]], store: ArtifactStore, workdir: Path,
                           log: Callable[[str], None]) -> bool:
    """Download each (record, URL) again, verified; True when all are back in the store intact."""
    import httpx  # only a repair needs a client here

    from wanflow.providers.downloads import download_verified

    async def wait(attempt: int, retry_after: float | None, what: str) -> bool:
        if attempt >= 3:
            return False
        await anyio.sleep(min(retry_after or 1.0, 10.0))
        return True

    async with httpx.AsyncClient(timeout=30, follow_redirects=True, max_redirects=3) as client:
        for record, url in broken:
            target = workdir / f"repair-{record['sha256'][:16]}{_suffix(record)}"
            try:
                await download_verified(client, url, target, wait, log)
            except Exception as error:
                log(f"could not re-download {record['sha256'][:12]} from its result URL ({error})")
                return False
            stored = store.put_file(target, record.get("media_type", "application/octet-stream"), move=True)
            if stored.sha256 != record["sha256"]:
                log(f"the result URL now serves other bytes than {record['sha256'][:12]}; not using them")
                return False
            log(f"re-downloaded {record['sha256'][:12]} from its still-valid result URL instead of paying again")
    return True


def _suffix(record: dict[str, Any]) -> str:
    kind = str(record.get("media_type", ""))
    return ".mp4" if kind.startswith("video") else ".txt" if kind.startswith("text") else ".png"
