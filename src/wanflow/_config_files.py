"""Reading wanflow's TOML config files (the project's wanflow.toml, the user's config.toml)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from wanflow._exceptions import UsageError


def read_toml(path: Path) -> dict[str, Any]:
    """``path`` as a dict ({} when absent); a broken file is a UsageError naming it."""
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: invalid TOML ({error})") from None
