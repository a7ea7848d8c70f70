"""Reading wanflow's TOML config files (the project's wanflow.toml, the user's config.toml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wanflow._bounded import read_bounded
from wanflow._exceptions import UsageError

MAX_CONFIG_BYTES = 1_000_000


def read_config_text(path: Path) -> str | None:
    """The text of a config file (None when absent). A folder, device, FIFO or socket, a file
    larger than MAX_CONFIG_BYTES or one that is not UTF-8 is a UsageError naming it."""
    try:
        return read_bounded(path, MAX_CONFIG_BYTES).decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8") from None
    except OSError as error:
        raise UsageError(f"cannot read the config file {path}: {error.strerror or error}") from None


def read_toml(path: Path) -> dict[str, Any]:
    """``path`` as a dict ({} when absent); a broken file is a UsageError naming it."""
    text = read_config_text(path)
    if text is None:
        return {}
    import tomllib  # about 3 ms to import: only for a config file that exists

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{path}: invalid TOML ({error})") from None
