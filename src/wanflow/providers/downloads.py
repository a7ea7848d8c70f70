"""Fetching results: streamed, bounded, checked to the last byte and frame, retried while valid.

A result URL is presigned and lives 24 hours. A download is done when:

- the body has the length ``Content-Length`` announced (and is not empty);
- it matches ``Content-MD5`` where the storage sends one;
- it reads completely (``media.verify_complete``): PNG chunk CRCs to ``IEND``, JPEG data to its
  end marker, other images decoded whole, video and audio frame by frame to the stated duration.

A short, reset or damaged download is fetched again with a fresh GET, up to
``DAMAGED_TRIES`` times with backoff: the step waits, it does not fail. A 403/404/410 means the
URL is gone (``ResultGone``): nothing more can be fetched from it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import httpx

from wanflow._exceptions import MediaError, ProviderError, ResultGone
from wanflow.media.probe import verify_complete
from wanflow.providers.policies import parse_retry_after

MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
DAMAGED_TRIES = 3
INLINE_VERIFY_BYTES = 64 * 1024
EXTENSIONS = {"images": ".png", "video": ".mp4", "text": ".txt"}

# wait(attempt, retry_after, what) sleeps before another try and says whether one is left.
Wait = Callable[[int, float | None, str], Awaitable[bool]]


async def download_verified(client: httpx.AsyncClient, url: str, target: Path, wait: Wait,
                            log: Callable[[str], None]) -> None:
    """Fetch ``url`` into ``target`` and prove it whole, retrying as the module says."""
    if not url.startswith(("http://", "https://")):
        raise ProviderError(f"refusing to download a result from a non-http(s) URL: {url[:60]}")
    attempt, damaged = 0, 0
    while True:
        attempt += 1
        try:
            problem, retry_after = await _fetch(client, url, target)
        except httpx.TooManyRedirects:
            raise ProviderError("result URL redirected too many times") from None
        except httpx.TransportError as error:
            if await wait(attempt, None, f"download: {type(error).__name__}"):
                continue
            raise ProviderError(f"could not download a result after {attempt} attempts ({type(error).__name__})",
                                retryable=True) from None
        if problem is None:
            return
        if retry_after is not None:  # 429 or 5xx: the storage asks to wait
            if await wait(attempt, retry_after or None, f"download: {problem}"):
                continue
            raise ProviderError(f"could not download a result after {attempt} attempts ({problem})", retryable=True)
        damaged += 1
        if damaged >= DAMAGED_TRIES or not await wait(damaged, None, f"download was not intact ({problem}); fetching it again"):
            raise ProviderError(f"the result downloaded {damaged} times and was never intact ({problem}); the task id "
                                "is kept, so a rerun fetches it again while its URL is valid", retryable=True)
        log(f"download retry {damaged + 1} of {DAMAGED_TRIES}: {problem}")


async def _fetch(client: httpx.AsyncClient, url: str, target: Path) -> tuple[str | None, float | None]:
    """One GET: (None, None) when intact; (problem, None) for a bad body; (problem, seconds) to wait."""
    async with client.stream("GET", url) as response:
        if response.status_code in (403, 404, 410):
            raise ResultGone(f"result URL answered HTTP {response.status_code}: it expired or is gone")
        if response.status_code == 429 or response.status_code >= 500:
            after = parse_retry_after(response.headers.get("Retry-After"), anyio.current_time())
            return f"HTTP {response.status_code}", after if after is not None else 0.0
        if not response.is_success:
            raise ProviderError(f"result download failed with HTTP {response.status_code}")
        expected = int(response.headers.get("Content-Length") or 0)
        if expected > MAX_DOWNLOAD_BYTES:
            raise ProviderError(f"result is {expected:,} bytes, over the {MAX_DOWNLOAD_BYTES:,} byte limit")
        digest = hashlib.md5(usedforsecurity=False)
        written = 0
        # Local writes of network-sized chunks are fast next to the network itself.
        with open(target, "wb") as handle:  # noqa: ASYNC230
            async for chunk in response.aiter_bytes():
                written += len(chunk)
                if written > MAX_DOWNLOAD_BYTES:
                    raise ProviderError(f"result exceeded the {MAX_DOWNLOAD_BYTES:,} byte limit")
                digest.update(chunk)
                handle.write(chunk)
        if written == 0:
            return "an empty body", None
        if expected and written != expected:
            return f"got {written:,} of {expected:,} bytes", None
        announced = _announced_md5(response.headers)
        if announced is not None and announced != digest.hexdigest():
            return "the body does not match the storage's MD5", None
    if target.suffix != EXTENSIONS["text"]:
        try:
            if written <= INLINE_VERIFY_BYTES:  # checked in well under a millisecond: a thread hop costs more
                verify_complete(target)
            else:
                await anyio.to_thread.run_sync(verify_complete, target)
        except MediaError as error:
            return str(error), None
    return None, None


def _announced_md5(headers: httpx.Headers) -> str | None:
    """The MD5 the storage vouches for in ``Content-MD5`` (base64). An ETag is not used: many
    servers derive it from metadata, not content (multipart uploads, Starlette's mtime+size)."""
    content_md5 = headers.get("Content-MD5")
    if not content_md5:
        return None
    try:
        return base64.b64decode(content_md5, validate=True).hex()
    except ValueError:
        return None


def output_target(workdir: Path, field: str, number: int) -> Path:
    """Where the ``number``-th output of ``field`` is written."""
    return workdir / f"{field}-{number}{EXTENSIONS[field]}"


