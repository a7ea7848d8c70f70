"""Bounded reads: a pipeline, --vars-file, --batch or wanflow.toml that is /dev/zero, /dev/urandom,
a FIFO, a socket or a folder is refused by name at once (exit 2), never read until memory runs out
or waited on forever."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wanflow._bounded import NotARegularFile, TooLarge, read_bounded

SRC = str(Path(__file__).resolve().parent.parent / "src")
PIPE = "name: sp\nvars: {subject: teapot}\nsteps:\n  a: {model: wan2.6-t2i, prompt: 'a {{ vars.subject }}', params: {n: 1}}\n"


def _special(kind: str, folder: Path) -> tuple[Path, object]:
    if kind == "fifo":
        path = folder / "special.fifo"
        os.mkfifo(path)
        return path, None
    if kind == "socket":
        path = folder / "special.sock"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        return path, server
    if kind == "folder":
        path = folder / "special.d"
        path.mkdir()
        return path, None
    return Path(kind), None


def _wanflow(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WANFLOW")}, "PYTHONPATH": SRC,
           "WANFLOW_CONFIG": "/nonexistent/config.toml"}
    return subprocess.run([sys.executable, "-m", "wanflow", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=30)


KINDS = ["/dev/zero", "/dev/urandom", "fifo", "socket", "folder"]
WORDS = {"/dev/zero": "character device", "/dev/urandom": "character device", "fifo": "FIFO",
         "socket": "socket", "folder": "folder"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["pipeline", "vars-file", "batch", "wanflow.toml"])
def test_a_special_file_is_refused_by_name_at_once(tmp_path, kind, where):
    (tmp_path / "pipe.yaml").write_text(PIPE)
    special, keep = _special(kind, tmp_path)
    if where == "batch" and kind in ("fifo", "socket", "folder"):
        special = special.rename(special.with_suffix(".csv"))
    args = ["validate", "pipe.yaml"]
    if where == "pipeline":
        args = ["validate", str(special)]
    elif where == "vars-file":
        args += ["--vars-file", str(special)]
    elif where == "batch":
        if kind.startswith("/dev/"):
            (tmp_path / "rows.csv").symlink_to(kind)
            special = tmp_path / "rows.csv"
        args = ["plan", "pipe.yaml", "--batch", str(special)]
    else:
        (tmp_path / "wanflow.toml").unlink(missing_ok=True)
        if kind.startswith("/dev/"):
            (tmp_path / "wanflow.toml").symlink_to(kind)
        else:
            special.rename(tmp_path / "wanflow.toml")
    started = time.monotonic()
    done = _wanflow(args, tmp_path)
    assert time.monotonic() - started < 15
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    assert WORDS[kind] in done.stderr, done.stderr
    del keep


def test_the_limit_applies_while_reading(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * 5000)
    assert read_bounded(big, 5000) == b"#" * 5000
    with pytest.raises(TooLarge):
        read_bounded(big, 4999)
    with pytest.raises(NotARegularFile, match="character device"):
        read_bounded(Path("/dev/zero"), 1000)


def test_a_pipeline_larger_than_the_limit_is_refused_with_its_limit(tmp_path):
    (tmp_path / "huge.yaml").write_bytes(b"name: x\n" + b"# padding\n" * 200_000)
    done = _wanflow(["validate", "huge.yaml"], tmp_path)
    assert done.returncode == 2 and "at most 1,000,000 bytes" in done.stderr, done.stderr
