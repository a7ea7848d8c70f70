"""The model catalog: every Wan model's inputs, outputs, parameters, rules and prices.

Everything comes from models.yaml. Code asks the catalog questions ("which outputs does this
step produce with these params?", "is this size allowed?") instead of branching on model names.
"""

from __future__ import annotations

import contextlib
import functools
import marshal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wanflow._fs import atomic_write_bytes
from wanflow.catalog.parse import parse_media, parse_model
from wanflow.catalog.services import ServiceSpec, parse_service
from wanflow.catalog.spec import MediaRules, ModelSpec

OUTPUT_FIELDS = ("images", "video", "text")


@dataclass(frozen=True)
class Catalog:
    """All known models, looked up by canonical name or alias, and the shared media rules."""

    models: Mapping[str, ModelSpec]
    media: Mapping[str, MediaRules]
    services: Mapping[str, ServiceSpec]
    _by_name: Mapping[str, str]

    def get(self, name: str) -> ModelSpec | None:
        """The model called ``name`` (canonical or alias, any case), or None."""
        canonical = self._by_name.get(name.strip().lower())
        return self.models[canonical] if canonical else None

    def names(self) -> list[str]:
        """Canonical model names, in catalog order."""
        return list(self.models)

    def all_param_names(self) -> set[str]:
        """Every parameter name any model accepts."""
        return {param for model in self.models.values() for param in model.params}


@functools.cache
def load_catalog() -> Catalog:
    """The catalog shipped with wanflow (parsed once per process)."""
    raw = _raw_catalog(Path(__file__).with_name("models.yaml"))  # importlib.resources costs 10 ms to import
    models = {name: parse_model(name, data) for name, data in raw["models"].items()}
    by_name: dict[str, str] = {}
    for name, model in models.items():
        for alias in (name, *model.aliases):
            by_name[alias.lower()] = name
    services = {name: parse_service(name, data) for name, data in raw.get("services", {}).items()}
    return Catalog(models, parse_media(raw.get("media", {})), services, by_name)


def _raw_catalog(source: Path) -> dict[str, Any]:
    """models.yaml as plain data, kept like bytecode: parsing the YAML costs about 20 ms a process,
    reading its marshalled copy in ``__pycache__`` (named by the file's size and mtime, as a .pyc
    is checked) under 1 ms. Written only where Python itself would write bytecode."""
    stamp = source.stat()
    kept = source.parent / "__pycache__" / f"{source.stem}.{stamp.st_size}-{stamp.st_mtime_ns}.marshal"
    try:
        raw = marshal.loads(kept.read_bytes())
        if isinstance(raw, dict):
            return raw
    except (OSError, ValueError, EOFError, TypeError):
        pass  # absent or damaged: parse the YAML again
    import yaml  # PyYAML costs ~30 ms to import: only when the kept copy is missing

    raw = yaml.load(source.read_text("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: 5x faster
    if not sys.dont_write_bytecode and sys.pycache_prefix is None:  # where Python itself writes bytecode
        with contextlib.suppress(OSError, ValueError):  # read-only, or a value marshal cannot hold: parse each time
            kept.parent.mkdir(exist_ok=True)
            for stale in kept.parent.glob(f"{source.stem}.*.marshal"):
                stale.unlink(missing_ok=True)
            atomic_write_bytes(kept, marshal.dumps(raw), durable=False)
    return raw
