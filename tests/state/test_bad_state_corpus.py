"""Every tampered state file in bad_state/ is read as untrusted input: no command ends in a
traceback or an internal error, nothing outside the project is read, written or removed, the
damaged file is named, and ``cache gc`` keeps everything while a record or journal is damaged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wanflow.cli.main import main
from wanflow.state.journal import Journal
from wanflow.state.out_folder import MANIFEST

CORPUS = Path(__file__).parents[1] / "bad_state"
CASES = sorted(CORPUS.glob("*.json"))
PIPE = """name: st
steps:
  a: {model: wan2.6-t2i, prompt: a red teapot, params: {n: 1}}
  b: {model: wan2.6-t2i, prompt: "a {{ vars.colour }} cup", params: {n: 1}}
vars: {colour: green}
outputs:
  hero: '{{ steps.a.images[0] }}'
"""
ORPHAN = "ab" * 32  # an object no good record names: a damaged one might


def _cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code in (0, 1, 2), text
    assert "Traceback" not in text and "internal error" not in text, text
    return code, text


def _set(document, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        document = document[int(part)] if isinstance(document, list) else document[part]
    if isinstance(document, list):
        document[int(last)] = value
    else:
        document[last] = value


def _fill(value, victim: Path, key: str):
    return json.loads(json.dumps(value).replace("{VICTIM}", str(victim)).replace("{KEY}", key))


def _tamper(case: dict, project: Path, victim: Path) -> Path:
    state = project / ".wanflow"
    records = sorted((state / "runs").glob("*.json"))
    newest = records[-1]
    key = json.loads(newest.read_text())["steps"]["a"]["cache_key"]
    kind = case["file"]
    if kind == "record":
        path = newest
    elif kind == "batch":
        path = next((state / "runs/batches").glob("*.json"))
    elif kind == "index":
        path = state / "index/_runs.json"
    elif kind == "manifest":
        path = project / "out/st" / MANIFEST
    elif kind == "cache_entry":
        path = state / "cache" / key[:2] / f"{key}.json"
    else:
        path = state / "journal" / f"{key}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
    if "raw" in case:
        path.write_text(_fill(case["raw"], victim, key))
    elif "raw_hex" in case:
        path.write_bytes(bytes.fromhex(case["raw_hex"]))
    elif "truncate" in case:
        path.write_bytes(path.read_bytes()[: case["truncate"]])
    elif "add_entry" in case:
        data = json.loads(path.read_text())
        data["files"][_fill(case["add_entry"], victim, key)] = {"sha256": "0" * 64, "owner": "step:a", "size": 8}
        path.write_text(json.dumps(data))
    elif "index_summary" in case:
        data = json.loads(path.read_text())
        for entry in data["records"].values():
            entry["summary"].update(case["index_summary"])
        path.write_text(json.dumps(data))
    else:
        data = json.loads(path.read_text())
        for dotted, value in case["set"].items():
            _set(data, dotted, _fill(value, victim, key))
        path.write_text(json.dumps(data))
    return path


def test_corpus_is_not_empty():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case_file", CASES, ids=[case.stem for case in CASES])
def test_a_tampered_state_file_is_untrusted_input(case_file, project, write_pipeline, capsys, tmp_path_factory,
                                                  use_instrumented_local):
    case = json.loads(case_file.read_text())
    outside = tmp_path_factory.mktemp("outside")
    victim = outside / "victim.txt"
    victim.write_text("precious")
    path = write_pipeline(PIPE)
    (project / "rows.csv").write_text("colour\nred\nblue\n")
    assert _cli(capsys, "run", str(path))[0] == 0
    if case["file"] == "batch":
        assert _cli(capsys, "run", str(path), "--batch", "rows.csv")[0] == 0
    assert _cli(capsys, "run", str(path), "--var", "colour=blue")[0] == 0
    _cli(capsys, "runs")  # builds the index
    orphan = project / ".wanflow/objects" / ORPHAN[:2] / ORPHAN
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"an object only a damaged record might name")
    tampered = _tamper(case, project, victim)

    texts = [_cli(capsys, "runs")[1], _cli(capsys, "runs", "show", "latest")[1], _cli(capsys, "runs", "diff", "latest")[1],
             _cli(capsys, "report", "latest")[1]]
    code, gc_text = _cli(capsys, "cache", "gc", "--keep-days", "0")
    assert code == 0
    if case["file"] in ("record", "journal") and case["expect"]:
        assert orphan.is_file(), "gc fails closed while a record or journal is damaged"
        assert "damaged" in gc_text
    code, text = _cli(capsys, "run", str(path))
    assert code in (0, 1), text
    if case["expect"]:
        shown = "\n".join(texts) + gc_text
        assert str(tampered) in shown and case["expect"] in shown, shown
    assert victim.read_text() == "precious"
    assert [p.name for p in outside.iterdir()] == ["victim.txt"]
    assert not (project.parent.parent / "x").exists() and not (project.parent / "x").exists()


@pytest.mark.parametrize(("content", "why"), [
    ('{"key": "K", "step": 5, "provider": "dashscope", "fingerprint": "f", "intent_at": 1.0}\n', "wrong types"),
    ('{"key": "OTHER", "step": "a", "provider": "dashscope", "fingerprint": "f", "intent_at": 1.0}\n', "another key"),
    ("\xff\xfe garbage\n", "random bytes"),
    ("[1, 2]\n", "not an object"),
    ('{"key": "K", "step": "a", "provider": "dashscope", "fingerprint": "f", "intent_at": 1.0, "task_id": "t"}\n'
     '{"key": "K", "step": "a", "provider": "dashscope", "fingerprint": "f", "intent_at": NaN}\n', "a finished bad line"),
])
def test_a_damaged_journal_line_is_a_damaged_entry(tmp_path, content, why):
    """The step then stops and asks (providers/recovery.py), exactly as for an emptied log."""
    key = "c" * 64
    folder = tmp_path / "journal"
    folder.mkdir()
    (folder / f"{key}.jsonl").write_text(content.replace('"K"', f'"{key}"'))
    entry = Journal(folder).get(key)
    assert entry is not None and entry.damaged, why


def test_a_torn_last_line_still_falls_back_to_the_line_before(tmp_path):
    key = "d" * 64
    folder = tmp_path / "journal"
    folder.mkdir()
    good = json.dumps({"key": key, "step": "a", "provider": "dashscope", "fingerprint": "f", "intent_at": 1.0,
                       "task_id": "task-1"})
    (folder / f"{key}.jsonl").write_text(good + "\n" + good[:30])
    entry = Journal(folder).get(key)
    assert entry is not None and not entry.damaged and entry.task_id == "task-1"


@pytest.mark.parametrize("record", [b"[1]", b'{"expires": "soon"}', b"\xff", b'{"released": false, "expires": null}'])
def test_a_damaged_lease_counts_as_expired_and_a_stray_name_is_ignored(tmp_path, record):
    pytest.importorskip("fsspec")
    from wanflow.state.shared_store import KeyLease, SharedStore

    store = SharedStore(f"file://{tmp_path / 'shared'}")
    key = "e" * 64
    store.write(f"leases/{key}/00000001.json", record)
    store.write(f"leases/{key}/not-an-epoch.json", b"{}")
    lease = KeyLease(store, key)
    assert lease.try_take() and lease.epoch == 2


@pytest.mark.parametrize("entry", [{"url": 5, "expires_at": 9e99}, {"url": "oss://x", "expires_at": "later"},
                                   {"expires_at": 9e99}, [1], {"url": "oss://x", "expires_at": True}])
def test_a_damaged_upload_record_only_costs_an_upload(tmp_path, entry):
    from wanflow.providers.uploads import UploadCache

    path = tmp_path / "uploads.json"
    path.write_text(json.dumps({f"{'a' * 64}:m": entry}))
    cache = UploadCache(path)
    assert cache.get("a" * 64, "m") is None
    cache.put("b" * 64, "m", "oss://y", 9e12)
    assert cache.get("b" * 64, "m") == "oss://y"
