"""Service settings: API keys and base URLs from the environment or the user's config file.

Keys are never written anywhere by wanflow and never appear in messages; ``ServiceConfig``'s
repr hides them. The user config lives at ``$WANFLOW_CONFIG`` or
``$XDG_CONFIG_HOME/wanflow/config.toml`` (default ``~/.config/wanflow/config.toml``)::

    [providers.dashscope]
    api_key = "sk-..."
    region = "singapore"          # beijing, virginia, hongkong (or their SDK spellings); or base_url = "https://..."
    workspace = "ws-..."          # optional: a Model Studio workspace, sent as X-DashScope-WorkSpace

    [providers.vtrix]
    api_key = "..."
    envelope = "gateway"          # or "documented" (the default): see the README's providers section
    gateway_url = "https://..."   # where the gateway envelope is sent ($VTRIX_GENERATION_URL)

The same settings, except ``api_key``, may also stand in the project's ``wanflow.toml`` (a file kept
in git must not hold a key). The environment beats the project file, which beats the user config.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wanflow._exceptions import UsageError
from wanflow.catalog.loader import load_catalog
from wanflow.project.config_files import read_toml

VTRIX_DEFAULT_BASE = "https://cloud.vtrix.ai"

_SERVICES = {
    # name: (key variable, base URL variable)
    "dashscope": ("DASHSCOPE_API_KEY", "DASHSCOPE_HTTP_BASE_URL"),
    "vtrix": ("VTRIX_API_KEY", "VTRIX_BASE_URL"),
}
# Other settings and the environment variables that set them (the vtrix CLI's own name for the gateway).
_SETTING_VARS = {
    ("vtrix", "envelope"): "VTRIX_ENVELOPE",
    ("vtrix", "gateway_url"): "VTRIX_GENERATION_URL",
    ("dashscope", "service_clock"): "DASHSCOPE_SERVICE_CLOCK",
    ("dashscope", "workspace"): "DASHSCOPE_WORKSPACE",
}
PROJECT_SETTINGS = frozenset({"base_url", "region", "envelope", "gateway_url", "service_clock", "url_reuse_hours",
                              "workspace"})
URL_REUSE_HOURS = 20.0  # pass a result URL downstream only within this long of its task's end (URLs live 24 h)


@dataclass(frozen=True)
class ServiceConfig:
    """Where and as whom to call one service."""

    name: str
    base_url: str
    api_key: str = field(repr=False)  # "" when none is configured: planning needs none
    missing_key_hint: str = ""  # where to put a key, for the error a paid call without one raises
    envelope: str = "documented"  # the request envelope (catalog: services.<name>.envelopes)
    gateway_url: str = ""  # base URL of the gateway envelope (vtrix)
    service_clock: str = "auto"  # the task list's clock zone, "+08:00", or "auto" (several likely zones)
    url_reuse_hours: float = URL_REUSE_HOURS
    workspace: str = ""  # a Model Studio workspace id, sent as X-DashScope-WorkSpace (DashScope)

    def __repr__(self) -> str:
        return (f"ServiceConfig(name={self.name!r}, base_url={self.base_url!r}, envelope={self.envelope!r}, "
                f"gateway_url={self.gateway_url!r}, api_key=<hidden>)")

    def url_for(self, setting: str) -> str:
        """The base URL a dialect's envelope names (``base_url`` or ``gateway_url``)."""
        value = str(getattr(self, setting))
        if not value:
            raise UsageError(f"provider '{self.name}' with envelope '{self.envelope}' needs {setting}: set "
                             f"{_SETTING_VARS.get((self.name, setting), setting)} or {setting} under [providers.{self.name}]")
        return value

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


def project_settings(project: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``[providers.<name>]`` of the project's wanflow.toml; a key there, or an unknown setting, is an error."""
    section = project.get("providers", {}).get(name, {}) if isinstance(project.get("providers", {}), dict) else {}
    if not isinstance(section, dict):
        raise UsageError(f"wanflow.toml [providers.{name}] must be a table")
    if "api_key" in section:
        raise UsageError(f"wanflow.toml [providers.{name}] holds an api_key: wanflow.toml is kept in git, so keys "
                         f"belong in the environment ({_SERVICES[name][0]}) or the user config ({user_config_path()})")
    unknown = sorted(set(section) - PROJECT_SETTINGS)
    if unknown:
        raise UsageError(f"wanflow.toml [providers.{name}]: unknown setting '{unknown[0]}' "
                         f"(allowed: {', '.join(sorted(PROJECT_SETTINGS))})")
    return dict(section)


def service_config(name: str, environ: Mapping[str, str] | None = None,
                   project: Mapping[str, Any] | None = None) -> ServiceConfig:
    """The settings of ``name``. A missing key is not an error yet (``plan`` needs none); a call
    that needs one raises a UsageError saying where to put it (ServiceConfig.require_key).

    ``project`` is the project's wanflow.toml as a dict (None: no project settings). The registry
    passes the pipeline's project, so the current folder never decides."""
    env = environ if environ is not None else os.environ
    key_var, base_var = _SERVICES[name]
    user_section = read_user_config(env).get("providers", {}).get(name, {})
    section = {**user_section, **project_settings(project or {}, name)}
    api_key = env.get(key_var, "").strip() or str(user_section.get("api_key", "")).strip()
    hint = f"provider '{name}' needs an API key: set {key_var} or api_key under [providers.{name}] in {user_config_path(env)}"
    base = env.get(base_var, "").strip() or str(section.get("base_url", "")).strip()
    spec = load_catalog().services[name]
    if not base and spec.regions:
        region = (env.get("DASHSCOPE_REGION", "") or str(section.get("region", "singapore"))).strip().lower()
        if region not in spec.regions:
            raise UsageError(f"unknown DashScope region '{region}' (known: {', '.join(sorted(spec.regions))})")
        base = spec.regions[region]
    if not base:
        base = VTRIX_DEFAULT_BASE
    if not base.startswith(("http://", "https://")):
        raise UsageError(f"{base_var} must be an http(s) URL")
    settings = {
        setting: (env.get(_SETTING_VARS.get((name, setting), ""), "").strip() or str(section.get(setting, "")).strip())
        for setting in ("envelope", "gateway_url", "service_clock", "workspace")
    }
    envelope = settings["envelope"] or spec.default_envelope
    if envelope not in spec.envelopes:
        raise UsageError(f"provider '{name}': unknown envelope '{envelope}' (known: {', '.join(spec.envelopes)})")
    gateway = settings["gateway_url"]
    if gateway and not gateway.startswith(("http://", "https://")):
        raise UsageError(f"provider '{name}': gateway_url must be an http(s) URL")
    clock = settings["service_clock"] or "auto"
    if clock != "auto":
        parse_clock_offset(clock)
    raw_hours = env.get("WANFLOW_URL_REUSE_HOURS", "").strip() or str(section.get("url_reuse_hours", "")).strip()
    try:
        reuse = float(raw_hours) if raw_hours else URL_REUSE_HOURS
    except ValueError:
        reuse = -1.0
    if not 0 <= reuse <= 23:
        raise UsageError(f"url_reuse_hours must be a number of hours from 0 to 23 (result URLs live 24 h), got '{raw_hours}'")
    return ServiceConfig(name=name, base_url=base.rstrip("/"), api_key=api_key, missing_key_hint=hint,
                         envelope=envelope, gateway_url=gateway.rstrip("/"), service_clock=clock, url_reuse_hours=reuse,
                         workspace=settings["workspace"] if spec.workspace_header else "")


def parse_clock_offset(text: str) -> float:
    """Seconds east of UTC from ``+08:00`` / ``-05:30`` / ``UTC``; a UsageError otherwise."""
    value = text.strip().upper()
    if value in ("UTC", "Z", "+00:00", "-00:00"):
        return 0.0
    sign = {"+": 1, "-": -1}.get(value[:1])
    hours, _, minutes = value[1:].partition(":")
    if sign is None or not hours.isdigit() or not (minutes or "0").isdigit() or int(hours) > 14 or int(minutes or 0) >= 60:
        raise UsageError(f"service_clock must be an offset such as +08:00 or -05:30, or auto; got '{text}'")
    return sign * (int(hours) * 3600 + int(minutes or 0) * 60)
