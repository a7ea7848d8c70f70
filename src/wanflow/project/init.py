"""``wanflow init``: a new project that validates and runs offline at once.

It writes ``wanflow.toml`` (every setting shown, commented), a starter pipeline, a copy of the
pipeline JSON Schema that the starter's editor hint points at, and ``.gitignore`` entries for
``.wanflow/`` and ``out/``. It never overwrites: if any file it would write exists, it writes none.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from wanflow._bounded import read_bounded
from wanflow._exceptions import UsageError
from wanflow._fs_errors import describe

SCHEMA_NAME = "wanflow.schema.json"
IGNORED = (".wanflow/", "out/")

CONFIG = """\
# wanflow project settings. Everything here is optional; the values shown are the defaults.
# Keys never belong in this file (it is meant for git): set DASHSCOPE_API_KEY / VTRIX_API_KEY,
# or put them in ~/.config/wanflow/config.toml.

[paths]
# state_dir = ".wanflow"        # cache, store and run records (env WANFLOW_STATE_DIR)
# out_dir = "out"               # outputs: out/<pipeline>/ (env WANFLOW_OUT_DIR)

[run]
# jobs = 4                      # steps generating at once (--jobs)
# confirm_above_usd = 5.0       # a paid run estimated above this asks first (env WANFLOW_CONFIRM_ABOVE)
# report = true                 # write out/<pipeline>/index.html after every run (--no-report skips it once)

# List prices are estimates; override them with what your account pays:
# [prices."wan2.6-t2i"]
# usd = 0.03                    # per image
# [prices."wan2.6-i2v".usd_by.resolution]
# "720P" = 0.10                 # per second
# "1080P" = 0.15

# Pressure on the paid services (the documented limits are the defaults):
# [limits.dashscope]
# submits_per_second = 2
# concurrent = 2

# [providers.dashscope]
# region = "singapore"          # or "beijing"
# [providers.vtrix]
# envelope = "documented"       # or "gateway" with gateway_url = "https://..."
"""

PIPELINE = """\
# yaml-language-server: $schema={schema}
#
# A starter pipeline: a product shot, an edit of it, and a short clip of the edit.
#
#   wanflow run {file}                          # free offline previews (the local provider)
#   wanflow run {file} --var product="a blue teapot"
#   wanflow plan {file} --provider dashscope    # what a paid run would cost
wanflow: 1
name: {name}
description: A product shot, restyled, then animated.

vars:
  product: ceramic coffee mug
  scene: a sunny kitchen counter

defaults:
  seed: 2026
  params: {{watermark: false}}

steps:
  shot:
    model: wan2.6-t2i
    prompt: "A {{{{ vars.product }}}} on a plain table, soft studio light"
    params: {{size: 1280*1280, n: 1}}

  scene:
    model: wan2.6-image
    images: ["{{{{ steps.shot.images[0] }}}}"]
    prompt: "Place the {{{{ vars.product }}}} on {{{{ vars.scene }}}}, keep its design identical"
    params: {{n: 1}}

  clip:
    model: wan2.6-i2v
    image: "{{{{ steps.scene.images[0] }}}}"
    prompt: "Slow push-in on the {{{{ vars.product }}}}, morning light"
    params: {{resolution: 720P, duration: 5, audio: false}}

outputs:
  poster: "{{{{ steps.scene.images[0] }}}}"
  clip: "{{{{ steps.clip.video }}}}"
"""


@dataclass
class InitResult:
    """What ``init`` wrote."""

    root: Path
    pipeline: Path
    written: list[Path] = field(default_factory=list)
    gitignore_added: list[str] = field(default_factory=list)


def pipeline_name(folder: Path) -> str:
    """A valid pipeline name from the folder's name (``starter`` when nothing usable is left)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.resolve().name).strip("-._")[:64]
    return cleaned if cleaned and cleaned[0].isalnum() else "starter"


def init_project(folder: Path, name: str | None = None) -> InitResult:
    """Create a wanflow project in ``folder`` (created if missing); refuses to overwrite anything.

    Everything is checked before anything is written (the folder, every target, ``.gitignore``);
    a write that still fails removes what this call wrote, so init leaves all or nothing."""
    name = name or pipeline_name(folder)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise UsageError(f"init: '{name}' is not a pipeline name (1-64 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit)")
    try:
        folder = folder.resolve()
    except (OSError, RuntimeError) as error:  # a symlink loop
        raise UsageError(f"init: cannot use {folder}: {getattr(error, 'strerror', None) or error}") from None
    if os.path.lexists(folder) and not folder.is_dir():
        raise UsageError(f"init: {folder} is not a folder")
    pipeline_file = folder / f"{name}.yaml"
    files = {
        folder / "wanflow.toml": CONFIG,
        pipeline_file: PIPELINE.format(schema=SCHEMA_NAME, file=pipeline_file.name, name=name),
        folder / SCHEMA_NAME: resources.files("wanflow").joinpath("schemas/pipeline.schema.json").read_text("utf-8"),
    }
    existing = [path for path in files if os.path.lexists(path)]  # a dangling or looping link counts
    if existing:
        raise UsageError("init: " + ", ".join(str(path) for path in existing) + " already exist(s); nothing was written "
                         "(init never overwrites)")
    gitignore = folder / ".gitignore"
    ignore_text = _read_gitignore(gitignore)
    result = InitResult(folder, pipeline_file)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            with open(path, "x", encoding="utf-8") as handle:  # "x": a file that appeared meanwhile is not overwritten
                result.written.append(path)
                handle.write(text)
        result.gitignore_added = _ignore(gitignore, ignore_text)
    except OSError as error:
        for path in result.written:
            path.unlink(missing_ok=True)
        raise UsageError(f"init: {describe(error)}; nothing was written") from None
    return result


def _read_gitignore(path: Path) -> str | None:
    """The text of an existing .gitignore (any encoding: its bytes are kept), or None."""
    if not os.path.lexists(path):
        return None
    try:
        raw = read_bounded(path, 10_000_000)
    except OSError as error:  # a folder, a FIFO, a symlink loop
        raise UsageError(f"init: cannot read {path}: {error.strerror or error}; nothing was written") from None
    return raw.decode("utf-8", errors="surrogateescape")


def _ignore(path: Path, text: str | None) -> list[str]:
    """Add the missing ``IGNORED`` lines to .gitignore (keeping what is there, byte for byte); the lines added."""
    present = {line.strip().rstrip("/") for line in (text or "").splitlines()}
    missing = [entry for entry in IGNORED if entry.rstrip("/") not in present and "/" + entry.rstrip("/") not in present]
    if missing:
        prefix = "" if not text or text.endswith("\n") else "\n"
        with open(path, "ab") as handle:  # appended as bytes: a latin-1 file stays what it was
            handle.write((prefix + "# wanflow: the cache and store, and generated outputs\n" + "\n".join(missing) + "\n")
                         .encode("utf-8"))
    return missing
