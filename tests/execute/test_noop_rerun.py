"""A fully cached rerun is nearly free, and still right: libyaml composes valid files exactly as the
pure-Python loader would, a remembered schema verdict holds only for the same bytes and schema,
out/ files and the lockfile are rewritten only when something changed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import CHAIN, EXAMPLES
from wanflow._exceptions import PipelineError
from wanflow.pipelines import schema_check, yaml_source
from wanflow.pipelines.source_file import load_yaml_file
from wanflow.pipelines.yaml_source import load_yaml_text

needs_libyaml = pytest.mark.skipif(yaml_source._CLoader is None, reason="PyYAML without libyaml 0.2.6+")


def _shape(document: yaml_source.SourceDocument) -> tuple:
    return document.data, document.value_marks, document.key_marks, document.containers


def _outcome(load, text: str) -> object:
    try:
        return _shape(load(text, "f.yaml"))
    except PipelineError as error:
        return [diagnostic.format() for diagnostic in error.diagnostics]


@needs_libyaml
@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*/*.yaml")), ids=lambda path: path.name)
def test_libyaml_gives_the_examples_the_same_data_and_positions(path: Path):
    text = path.read_text("utf-8")
    assert _shape(load_yaml_text(text, "f.yaml")) == _shape(yaml_source._load_with_python(text, "f.yaml"))


@needs_libyaml
@pytest.mark.parametrize("text", [
    "a: yes\nb: 2026-11-22\nc: True\nd: ~\ne: 0x1F\nf: 1.5e3\ng: 'x'\n",  # YAML 1.2 booleans, dates as text
    "base: &b {seed: 1}\nstep:\n  <<: *b\n  seed: 2\n",  # merge keys, an explicit key overriding
    "s:\n  - - - deep\n  - {k: [1, {m: n}]}\n",
    "a:\n  b: 1\n  b: 2\n",  # duplicate key: refused at the second one, naming the first
    "a: !!python/object:os.system x\n",  # tags that construct objects
    "a: !!binary aGk=\n",
    "x: &a [*a]\n",  # an alias inside itself
    "a: [1, 2\n", "a: b: c\n", "a: 1\n\tb: 2\n", "a: 'open\n", "\x00a: 1\n", "a: \x07\n", "- a\nb: 1\n",
    "a: " + "[" * 99 + "]" * 99 + "\n",  # 100 levels: allowed
    "a: " + "[" * 150 + "]" * 150 + "\n",  # refused at the 101st level, at its line and column
    "\n".join("  " * level + f"k{level}:" for level in range(120)) + " 1\n",
    "a: " + "[" * 1200 + "]" * 1200 + "\n",  # past libyaml's own bound
    "a:\t1\n", "a: [1,\t2]\n", "a: |\n  x\n\ty\n", "a: 'tab\tinside'\n",  # tabs libyaml alone would accept
])
def test_libyaml_and_the_python_loader_agree_on_values_positions_and_errors(text: str):
    assert _outcome(load_yaml_text, text) == _outcome(yaml_source._load_with_python, text)


def test_an_alias_inside_itself_is_a_located_error_not_a_crash():
    with pytest.raises(PipelineError) as raised:
        load_yaml_text("steps:\n  x: &a [*a]\n", "p.yaml")
    assert raised.value.diagnostics[0].format().startswith("p.yaml:2:6: steps.x[0]: values nest more than 100 levels")


VALID = "wanflow: 1\nname: v\nsteps:\n  a: {model: wan2.6-t2i, prompt: a kite}\n"


def test_a_schema_verdict_is_remembered_only_for_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WANFLOW_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "p.yaml"
    path.write_text(VALID)
    assert schema_check.check_schema(load_yaml_file(path)) == []
    assert len(list((tmp_path / "cache" / schema_check.VERDICTS).iterdir())) == 1

    def refuse(*args: object) -> None:
        raise AssertionError("validated again")

    monkeypatch.setattr(schema_check, "_validator", refuse)
    assert schema_check.check_schema(load_yaml_file(path)) == []  # the same bytes: not validated again
    monkeypatch.undo()
    monkeypatch.setenv("WANFLOW_CACHE_DIR", str(tmp_path / "cache"))

    path.write_text(VALID.replace("prompt:", "promt:"))  # one edit: validated, and refused
    problems = schema_check.check_schema(load_yaml_file(path))
    assert [(problem.location.line, problem.message) for problem in problems if problem.location] == [
        (4, "unknown field 'promt'; did you mean 'prompt'?")]
    assert len(list((tmp_path / "cache" / schema_check.VERDICTS).iterdir())) == 1  # refusals are not remembered


def test_a_schema_verdict_is_keyed_by_the_schema_and_wanflows_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WANFLOW_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "p.yaml"
    path.write_text(VALID)
    document = load_yaml_file(path)
    first = schema_check._verdict_path(document.digest)
    (tmp_path / "other.schema.json").write_bytes(schema_check._schema_bytes() + b" ")  # any edit of the schema
    monkeypatch.setattr(schema_check, "_SCHEMA_FILE", tmp_path / "other.schema.json")
    schema_check._schema_bytes.cache_clear()
    try:
        assert schema_check._verdict_path(document.digest) != first
    finally:
        monkeypatch.undo()
        schema_check._schema_bytes.cache_clear()
    monkeypatch.undo()
    monkeypatch.setenv("WANFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("wanflow._version.__version__", "0.0.0-other")
    assert schema_check._verdict_path(document.digest) != first
    assert load_yaml_text(VALID, "inline").digest == ""  # text not read from a file is always validated


def test_an_unwritable_cache_folder_only_means_validating_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("WANFLOW_CACHE_DIR", str(blocker / "cache"))  # under a file: cannot be created
    path = tmp_path / "p.yaml"
    path.write_text(VALID)
    assert schema_check.check_schema(load_yaml_file(path)) == []
    assert schema_check.check_schema(load_yaml_file(path)) == []


def _stamps(root: Path) -> dict[str, tuple[int, int]]:
    """Inode and mtime of every file the manifest says wanflow placed (outputs, not the run's own records)."""
    placed = json.loads((root / ".wanflow-manifest.json").read_text())["files"]
    return {relative: ((root / relative).stat().st_ino, (root / relative).stat().st_mtime_ns) for relative in placed}


def test_a_cached_rerun_leaves_out_files_and_the_lockfile_untouched(write_pipeline, run_with, project: Path):
    path = write_pipeline(CHAIN)
    first = run_with(path)
    out = first.out_dir
    lock = path.with_suffix(".lock")
    before, lock_before = _stamps(out), (lock.stat().st_ino, lock.stat().st_mtime_ns)
    assert len(before) == 5  # the steps' images (hero makes two) and the named output
    again = run_with(path)
    assert {step.status for step in again.steps.values()} == {"cached"}
    assert _stamps(out) == before  # not copied again: the same inode and mtime
    assert (lock.stat().st_ino, lock.stat().st_mtime_ns) == lock_before
    manifest = json.loads((out / ".wanflow-manifest.json").read_text())
    assert all({"sha256", "size", "mtime_ns", "owner"} <= set(entry) for entry in manifest["files"].values())


def test_an_out_file_changed_by_hand_is_kept_with_a_warning_and_restored_with_force_out(write_pipeline, run_with):
    path = write_pipeline(CHAIN)
    first = run_with(path)
    placed = first.steps["hero"].files[0].path
    original = placed.read_bytes()
    placed.write_bytes(b"scribbled over")  # another size and mtime
    again = run_with(path)
    assert placed.read_bytes() == b"scribbled over"  # out/ belongs to the user too
    assert any(f"kept {placed}" in warning and "--force-out" in warning for warning in again.steps["hero"].warnings)
    run_with(path, force_out=True)
    assert placed.read_bytes() == original
    same_size = bytearray(original)
    same_size[-1] ^= 1
    placed.write_bytes(bytes(same_size))
    os.utime(placed, ns=(placed.stat().st_atime_ns, placed.stat().st_mtime_ns + 1_000_000))  # same size, new mtime
    run_with(path)
    assert placed.read_bytes() == bytes(same_size)
    run_with(path, force_out=True)
    assert placed.read_bytes() == original
    placed.unlink()
    run_with(path)  # a file deleted by hand is simply put back
    assert placed.read_bytes() == original
    kept = placed.stat()
    placed.write_bytes(bytes(same_size))
    os.utime(placed, ns=(kept.st_atime_ns, kept.st_mtime_ns))  # same size, mtime set back (touch -r, cp -p)
    run_with(path)
    assert placed.read_bytes() == bytes(same_size)  # the inode's change time still shows the edit


def test_the_lockfile_is_rewritten_when_the_run_changes_it(write_pipeline, run_with):
    path = write_pipeline(CHAIN)
    run_with(path)
    lock = path.with_suffix(".lock")
    before = json.loads(lock.read_text())
    path.write_text(path.read_text().replace("on a table", "on a shelf"))
    run_with(path)
    after = json.loads(lock.read_text())
    assert after != before and "on a shelf" in lock.read_text()


def test_an_object_verified_once_is_hashed_again_once_its_file_changes(write_pipeline, run_with, workspace):
    path = write_pipeline(CHAIN)
    first = run_with(path)
    key = first.steps["hero"].cache_key
    assert workspace.cache.lookup(key) is not None  # hashed and remembered for this process
    assert workspace.cache.lookup(key) is not None  # remembered
    stored = workspace.store.path_for(first.steps["hero"].outputs.images[0].sha256)
    damaged = bytearray(stored.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # same size, other bytes
    stat = stored.stat()
    stored.chmod(0o644)
    stored.write_bytes(bytes(damaged))
    os.utime(stored, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert workspace.cache.lookup(key) is None


def test_the_files_of_a_step_taken_out_of_the_pipeline_are_removed_and_the_others_kept(write_pipeline, run_with, project):
    path = write_pipeline(CHAIN)
    first = run_with(path)
    kept = _stamps(first.out_dir)
    mine = project / "out/chain/steps/other/notes.txt"
    mine.write_text("mine")
    text = path.read_text()
    path.write_text(text[:text.index("  other:")] + text[text.index("outputs:"):])  # drop the step "other"
    run_with(path)
    assert not (project / "out/chain/steps/other/other-1.png").exists() and mine.read_text() == "mine"
    assert _stamps(first.out_dir) == {name: stamp for name, stamp in kept.items() if not name.startswith("steps/other/")}


@needs_libyaml
def test_with_several_problems_the_first_reported_is_the_python_loaders():
    text = "a: !!python/object x\nb: " + "[" * 150 + "]" * 150 + "\n"  # a bad tag first, too deep later
    assert _outcome(load_yaml_text, text) == _outcome(yaml_source._load_with_python, text)
    assert "nest more than 100 levels" in str(_outcome(load_yaml_text, text))


@needs_libyaml
def test_text_with_unusual_line_breaks_and_marks_is_placed_alike():
    for text in ['a: {p: "日本語 😀", q: 1}\nd: é\n', 'a: "x\u0085y"\nb: 1\n', "\ufeffa: 1\nb: 2\n", 'k: "a\rb"\rc: 1\r',
                 'k: "a\r\nb"\r\nc: 1\r\n', "a: >\n  x\u0085  y\nb: 1\n"]:
        assert _outcome(load_yaml_text, text) == _outcome(yaml_source._load_with_python, text), text


def test_without_any_cache_folder_every_load_is_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in ("WANFLOW_CACHE_DIR", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: (_ for _ in ()).throw(RuntimeError("no home"))))
    path = tmp_path / "p.yaml"
    path.write_text(VALID.replace("prompt:", "promt:"))
    assert "unknown field 'promt'" in schema_check.check_schema(load_yaml_file(path))[0].message
    path.write_text(VALID)
    assert schema_check.check_schema(load_yaml_file(path)) == []


def _new_process(monkeypatch) -> None:
    """What a later process starts with: no stamps in memory, the kept ones not read yet."""
    import wanflow.state.cache as cache_module

    monkeypatch.setattr(cache_module, "_VERIFIED", set())
    monkeypatch.setattr(cache_module, "_loaded", set())


def test_a_later_process_trusts_kept_stamps_and_hashes_a_rewritten_object_again(write_pipeline, run_with, workspace,
                                                                                monkeypatch):
    import wanflow.state.cache as cache_module
    import wanflow.state.store as store_module

    monkeypatch.setattr(cache_module, "_RACY_NS", 0)  # the objects were written a moment ago
    path = write_pipeline(CHAIN)
    first = run_with(path)
    key = first.steps["hero"].cache_key
    _new_process(monkeypatch)
    assert workspace.cache.lookup(key) is not None  # hashed, and its stamp kept
    assert (workspace.cache.root / "verified.jsonl").is_file()
    hashed: list[Path] = []
    real = store_module.sha256_file
    monkeypatch.setattr(store_module, "sha256_file", lambda file: hashed.append(file) or real(file))
    _new_process(monkeypatch)
    assert workspace.cache.lookup(key) is not None and hashed == []  # trusted from the kept stamp
    stored = workspace.store.path_for(first.steps["hero"].outputs.images[0].sha256)
    damaged = bytearray(stored.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    kept = stored.stat()
    stored.chmod(0o644)
    stored.write_bytes(bytes(damaged))
    os.utime(stored, ns=(kept.st_atime_ns, kept.st_mtime_ns))  # mtime set back: the ctime still tells
    _new_process(monkeypatch)
    assert workspace.cache.lookup(key) is None and hashed == [stored]


def test_a_fresh_stamp_is_not_kept_and_a_damaged_stamps_file_only_costs_a_hash(write_pipeline, run_with, workspace,
                                                                                monkeypatch):
    path = write_pipeline(CHAIN)
    key = run_with(path).steps["hero"].cache_key
    _new_process(monkeypatch)
    stamps = workspace.cache.root / "verified.jsonl"
    assert workspace.cache.lookup(key) is not None
    assert not stamps.exists()  # written under two seconds ago: a rewrite in the same tick could hide
    stamps.write_bytes(b'not json\n["a", 1]\n\xff\xfe\n[1, 2, 3, 4, "x"]\n')
    _new_process(monkeypatch)
    assert workspace.cache.lookup(key) is not None


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*/*.yaml"))[:3] + [None], ids=lambda path: getattr(path, "name", "odd"))
def test_a_recalled_document_has_the_data_and_positions_of_a_fresh_parse(tmp_path, path):
    """The parsed cache (pipelines/parsed_cache.py): a second load of the same bytes is recalled
    from the user's cache folder, equal in data and every position to parsing it again, under the
    name it is loaded by now."""
    from wanflow.pipelines import parsed_cache

    text = path.read_text("utf-8") if path else "a: .inf\nb: [1, 2.5, null, true, {c: '7'}]\nd: {}\n'8': x\n"
    source = tmp_path / "p.yaml"
    source.write_text(text, "utf-8")
    first = load_yaml_file(source)
    assert (parsed_cache.cache_dir() / "parsed" / f"{first.digest}.json").is_file()
    assert not list(tmp_path.rglob("*.json"))  # nothing in the project
    again = parsed_cache.recall(first.digest, "renamed.yaml")
    assert again is not None and again.digest == first.digest
    fresh = load_yaml_text(text, "renamed.yaml")
    assert _shape(again) == _shape(fresh)
    assert load_yaml_file(source, "renamed.yaml").locate(("b", 4, "c")) == fresh.locate(("b", 4, "c"))


@pytest.mark.parametrize("damage", [b"", b"\x00\xff", b"[]", b'{"parser": 1}', b"{}", b"[" * 100_000 + b"]" * 100_000,
                                    "kept"])  # "kept": the right parser, marks of the wrong shape
def test_a_damaged_or_foreign_kept_document_is_parsed_again(tmp_path, damage):
    from wanflow.pipelines import parsed_cache

    source = tmp_path / "p.yaml"
    source.write_text("steps:\n  a: {model: wan2.6-t2i}\n")
    first = load_yaml_file(source)
    kept = parsed_cache.cache_dir() / "parsed" / f"{first.digest}.json"
    if damage == "kept":
        data = json.loads(kept.read_text())
        data["values"] = [[["steps", True], "1", None]]
        damage = json.dumps(data).encode()
    kept.write_bytes(damage)
    assert parsed_cache.recall(first.digest, "p.yaml") is None
    assert _shape(load_yaml_file(source)) == _shape(first)
    assert parsed_cache.recall(first.digest, "p.yaml") is not None  # kept again by that parse


def test_a_changed_parser_or_a_failed_parse_is_never_recalled_and_old_documents_are_pruned(tmp_path, monkeypatch):
    from wanflow.pipelines import parsed_cache

    monkeypatch.setenv("WANFLOW_CACHE_DIR", str(tmp_path / "user-cache"))
    source = tmp_path / "p.yaml"
    source.write_text("a: [1, 2\n")
    with pytest.raises(PipelineError):
        load_yaml_file(source)
    folder = parsed_cache.cache_dir() / "parsed"
    assert not folder.exists()
    source.write_text("a: 1\n")
    document = load_yaml_file(source)
    monkeypatch.setattr(parsed_cache, "FORMAT", parsed_cache.FORMAT + 1)  # a new parser: parse again
    assert parsed_cache.recall(document.digest, "p.yaml") is None
    monkeypatch.setattr(parsed_cache, "MAX_KEPT", 3)
    for index in range(6):
        source.write_text(f"a: {index}\n")
        load_yaml_file(source)
    assert len(list(folder.glob("*.json"))) == 3
    assert parsed_cache.recall(load_yaml_file(source).digest, "p.yaml") is not None  # the newest stays
