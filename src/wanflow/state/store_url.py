"""The shared store's URL, checked before anything is sent: scheme, bucket, path, credentials,
and that the store answers within a few seconds.

``--store``, ``WANFLOW_STORE`` and ``[paths] store`` take ``file:///absolute/path`` (or a plain
path, relative to the project), ``s3://bucket/prefix`` or ``gs://bucket/prefix``. Anything else
(``ftp://``, ``s3://`` without a bucket, ``file://`` without a path) is a UsageError (exit 2)
that says what is allowed, never a folder named ``s3:`` or a store in the project root.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from wanflow._exceptions import UsageError

SCHEMES = {"file": "file:///absolute/path", "s3": "s3://bucket/prefix", "gs": "gs://bucket/prefix",
           "gcs": "gcs://bucket/prefix"}
ALLOWED = ", ".join(SCHEMES.values()) + " or a plain folder path"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
CONNECT_SECONDS = 5.0  # how long the store may take to answer the first probe


def store_url(value: str, root: Path) -> str:
    """``value`` as the checked URL fsspec takes (a plain path, relative to the project, becomes
    ``file://``); UsageError naming the problem and what is allowed."""
    text = value.strip()
    if "://" not in text:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", text) and not Path(text).exists():
            raise UsageError(f"--store {value!r}: not a URL this store takes (allowed: {ALLOWED})")
        return "file://" + str((root / Path(text).expanduser()).resolve())
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UsageError(f"--store {value!r}: the scheme {scheme + '://'!r} is not supported (allowed: {ALLOWED})")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/") or parts.path.strip("/") == "":
            raise UsageError(f"--store {value!r}: a file:// store needs an absolute folder, such as file:///mnt/team/wanflow "
                             "(three slashes)")
        return f"file://{parts.path}"
    if not _BUCKET.fullmatch(parts.netloc):
        raise UsageError(f"--store {value!r}: {scheme}:// needs a bucket name, such as {SCHEMES[scheme]}")
    return text.rstrip("/")


def s3_credentials_found() -> bool | None:
    """Whether botocore finds AWS credentials (environment, profile, instance role); None when
    botocore is not installed (s3fs is missing too, and says so)."""
    try:
        import botocore.session  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        return botocore.session.get_session().get_credentials() is not None
    except Exception:  # a broken profile file: botocore's own message comes with the first call
        return False


def open_options(url: str) -> dict[str, object]:
    """fsspec options that bound how long the store may take to answer (S3: one attempt, short
    connect timeout), so an unreachable store is an error within seconds, not a long hang."""
    if url.startswith("s3://"):
        return {"config_kwargs": {"connect_timeout": CONNECT_SECONDS, "read_timeout": 30,
                                  "retries": {"max_attempts": 2}}}
    return {}
