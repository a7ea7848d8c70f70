"""Service settings: API keys and base URLs from the environment or the user's config file.

Keys are never written anywhere by wanflow and never appear in messages; ``ServiceConfig``'s
repr hides them. The user config lives at ``$WANFLOW_CONFIG`` or
``$XDG_CONFIG_HOME/wanflow/config.toml`` (default ``~/.config/wanflow/config.toml``)::

    [providers.dashscope]
    api_key = "sk-..."
    region = "singapore"          # or "beijing"; or base_url = "https://..."

    [providers.vtrix]
    api_key = "..."
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from wanflow._config_files import read_toml
from wanflow._exceptions import UsageError

DASHSCOPE_REGIONS = {
    "singapore": "https://dashscope-intl.aliyuncs.com/api/v1",
    "beijing": "https://dashscope.aliyuncs.com/api/v1",
}
VTRIX_DEFAULT_BASE = "https://cloud.vtrix.ai"

_SERVICES = {
    # name: (key variable, base URL variable)
    "dashscope": ("DASHSCOPE_API_KEY", "DASHSCOPE_HTTP_BASE_URL"),
    "vtrix": ("VTRIX_API_KEY", "VTRIX_BASE_URL"),
}


@dataclass(frozen=True)
class ServiceConfig:
    """Where and as whom to call one service."""

    name: str
    base_url: str
    api_key: str = field(repr=False)  # "" when none is configured: planning needs none
    missing_key_hint: str = ""  # where to put a key, for the error a paid call without one raises

    def __repr__(self) -> str:
        return f"ServiceConfig(name={self.name!r}, base_url={self.base_url!r}, api_key=<hidden>)"

    def require_key(self) -> str:
        """The API key; a UsageError saying where to set one when there is none."""
        if not self.api_key:
            raise UsageError(self.missing_key_hint or f"provider '{self.name}' needs an API key")
        return self.api_key


def user_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the user's wanflow config is."""
    env = environ if environ is not None else os.environ
    if env.get("WANFLOW_CONFIG"):
        return Path(env["WANFLOW_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]).expanduser() if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "wanflow" / "config.toml"


def read_user_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The user's config ({} when absent)."""
    return read_toml(user_config_path(environ))


def service_config(name: str, environ: Mapping[str, str] | None = None) -> ServiceConfig:
    """The settings of ``name``. A missing key is not an error yet (``plan`` needs none); a call
    that needs one raises a UsageError saying where to put it (ServiceConfig.require_key)."""
    env = environ if environ is not None else os.environ
    key_var, base_var = _SERVICES[name]
    section = read_user_config(env).get("providers", {}).get(name, {})
    api_key = env.get(key_var, "").strip() or str(section.get("api_key", "")).strip()
    hint = f"provider '{name}' needs an API key: set {key_var} or api_key under [providers.{name}] in {user_config_path(env)}"
    base = env.get(base_var, "").strip() or str(section.get("base_url", "")).strip()
    if not base and name == "dashscope":
        region = (env.get("DASHSCOPE_REGION", "") or str(section.get("region", "singapore"))).strip().lower()
        if region not in DASHSCOPE_REGIONS:
            raise UsageError(f"unknown DashScope region '{region}' (known: {', '.join(DASHSCOPE_REGIONS)})")
        base = DASHSCOPE_REGIONS[region]
    if not base:
        base = VTRIX_DEFAULT_BASE
    if not base.startswith(("http://", "https://")):
        raise UsageError(f"{base_var} must be an http(s) URL")
    return ServiceConfig(name=name, base_url=base.rstrip("/"), api_key=api_key, missing_key_hint=hint)
