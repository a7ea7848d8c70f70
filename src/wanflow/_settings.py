"""wanflow's own environment settings (``WANFLOW_*``), parsed and checked in one place.

Every command checks them all before it does anything (``check_environment``), so a bad value is
an exit 2 before a create is sent, never a hang or a refusal after one: ``inf``, ``nan`` and
negative numbers are refused, and each number has sane bounds. A name close to a known one gets a
"did you mean" warning (an unknown ``WANFLOW_*`` name may belong to a test harness or a newer wanflow).
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from wanflow._exceptions import UsageError


@dataclass(frozen=True)
class NumberSetting:
    """A number with inclusive bounds (``whole``: an integer)."""

    low: float
    high: float
    unit: str
    whole: bool = False

    def parse(self, name: str, raw: str) -> float:
        """The value of ``raw``; UsageError naming ``name``, the value and what is allowed."""
        allowed = f"a {'whole ' if self.whole else ''}number of {self.unit} from {self.low:g} to {self.high:g}"
        try:
            value = int(raw) if self.whole else float(raw)
        except ValueError:
            raise UsageError(f"{name}={raw!r}: not a number (allowed: {allowed})") from None
        if not math.isfinite(value) or not self.low <= value <= self.high:
            raise UsageError(f"{name}={raw!r} is out of range (allowed: {allowed})")
        return value


@dataclass(frozen=True)
class ChoiceSetting:
    """One of a few words."""

    choices: tuple[str, ...]

    def parse(self, name: str, raw: str) -> str:
        if raw not in self.choices:
            raise UsageError(f"{name}={raw!r} (allowed: {', '.join(repr(choice) for choice in self.choices)})")
        return raw


@dataclass(frozen=True)
class TextSetting:
    """A path, URL or address, checked where it is used; here only: not empty when set."""

    what: str

    def parse(self, name: str, raw: str) -> str:
        return raw


Setting = NumberSetting | ChoiceSetting | TextSetting

SETTINGS: dict[str, Setting] = {
    "WANFLOW_POLL_INTERVAL": NumberSetting(0, 600, "seconds"),
    "WANFLOW_URL_REUSE_HOURS": NumberSetting(0, 23, "hours"),
    "WANFLOW_LEASE_SECONDS": NumberSetting(1, 86400, "seconds"),
    "WANFLOW_CLUSTER_WINDOW": NumberSetting(1, 100_000, "units", whole=True),
    "WANFLOW_CLUSTER_KEY_LOCKS": NumberSetting(1, 65_536, "locks", whole=True),
    "WANFLOW_OP_WORKERS": NumberSetting(1, 64, "worker threads", whole=True),
    "WANFLOW_CONFIRM_ABOVE": NumberSetting(0, 1_000_000, "dollars"),
    "WANFLOW_ALLOW_PAID": ChoiceSetting(("0", "1")),
    "WANFLOW_STATE_DIR": TextSetting("a folder"),
    "WANFLOW_OUT_DIR": TextSetting("a folder"),
    "WANFLOW_CACHE_DIR": TextSetting("a folder"),
    "WANFLOW_CONFIG": TextSetting("a file"),
    "WANFLOW_STORE": TextSetting("a store URL"),
    "WANFLOW_CLUSTER": TextSetting("a cluster address"),
    "WANFLOW_DEBUG": TextSetting("any value"),
}


def setting(name: str, environ: Mapping[str, str] | None = None) -> float | str | None:
    """The checked value of the setting ``name``, or None when it is unset or blank."""
    raw = (environ if environ is not None else os.environ).get(name, "").strip()
    if not raw:
        return None
    return SETTINGS[name].parse(name, raw)


def number_setting(name: str, default: float, environ: Mapping[str, str] | None = None) -> float:
    """A number setting's checked value, or ``default``."""
    value = setting(name, environ)
    return default if value is None else float(value)


def check_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """Check every ``WANFLOW_*`` setting; UsageError listing each bad one. Returns warnings for
    names that look like a misspelt setting."""
    env = environ if environ is not None else os.environ
    problems = []
    for name in SETTINGS:
        try:
            setting(name, env)
        except UsageError as error:
            problems.append(str(error))
    if problems:
        raise UsageError("; ".join(problems))
    warnings = []
    for name in sorted(env):
        if name.startswith("WANFLOW_") and name not in SETTINGS:
            close = difflib.get_close_matches(name, list(SETTINGS), n=1, cutoff=0.85)
            if close:
                warnings.append(f"{name} is not a wanflow setting and is ignored; did you mean {close[0]}?")
    return warnings
