"""Which cluster a run uses, if any (importing this loads no Dask)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def address_for(options_cluster: str | None, config: Mapping[str, Any]) -> str | None:
    """The cluster to use: the flag, else WANFLOW_CLUSTER, else ``[cluster] address``; None: run locally."""
    value = options_cluster or os.environ.get("WANFLOW_CLUSTER", "").strip() or (config.get("cluster") or {}).get("address")
    return str(value).strip() or None if value else None
