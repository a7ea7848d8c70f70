"""out/ is confined and belongs to the user too: a manifest entry never reaches outside the
folder, and a file edited by hand or not written by wanflow is kept, with a warning, unless
``--force-out``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from wanflow._confine import confined, is_inside, is_safe_name, is_sha256, named
from wanflow.cli.main import main
from wanflow.state.out_folder import MANIFEST

PIPE = "name: own\nsteps:\n  a: {model: wan2.6-t2i, prompt: a red teapot, params: {n: N}}\n"


def _run(path: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main(["run", str(path), *extra])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "internal error" not in text and "Traceback" not in text, text
    return code, text


@pytest.fixture
def victim(tmp_path_factory) -> Path:
    """A file outside the project that nothing may touch."""
    path = tmp_path_factory.mktemp("outside") / "victim.txt"
    path.write_text("precious")
    return path


def _manifest(project: Path) -> dict:
    return json.loads((project / "out/own" / MANIFEST).read_text())


def _add_entries(project: Path, entries: dict[str, dict]) -> None:
    data = _manifest(project)
    data["files"].update(entries)
    (project / "out/own" / MANIFEST).write_text(json.dumps(data))


@pytest.mark.parametrize("entry", ["../../../victim.txt", "ABSOLUTE", "steps/../../../victim.txt", "link/victim.txt"])
def test_a_manifest_entry_never_deletes_outside_the_folder(project, write_pipeline, capsys, victim, entry,
                                                           use_instrumented_local):
    path = write_pipeline(PIPE.replace("N", "1"))
    assert _run(path, capsys)[0] == 0
    (project / "out/own/link").symlink_to(victim.parent)  # a symlinked folder leading out
    relative = str(victim) if entry == "ABSOLUTE" else entry.replace("../../../", os.path.relpath(victim.parent, project / "out/own") + "/")
    _add_entries(project, {relative: {"sha256": "0" * 64, "owner": "step:a", "size": 8}})
    code, text = _run(path, capsys, "--fresh")
    assert code == 0
    assert victim.read_text() == "precious"
    assert "ignored the entry" in text or "kept" in text or entry == "link/victim.txt"
    assert relative not in _manifest(project)["files"]


def test_a_hand_edited_file_is_kept_when_its_step_makes_fewer_outputs(project, write_pipeline, capsys,
                                                                       use_instrumented_local):
    path = write_pipeline(PIPE.replace("N", "2"))
    assert _run(path, capsys)[0] == 0
    second = project / "out/own/steps/a/a-2.png"
    second.write_bytes(b"my retouched version")
    write_pipeline(PIPE.replace("N", "1"))
    code, text = _run(path, capsys)
    assert code == 0
    assert second.read_bytes() == b"my retouched version"
    assert f"kept {second}" in text and "--force-out" in text
    assert "steps/a/a-2.png" not in _manifest(project)["files"]
    # the word that lets wanflow replace it: a later run with --force-out does not bring it back,
    # since wanflow no longer claims it; deleting it by hand is the other way.


def test_a_hand_edited_file_is_not_overwritten_without_force_out(project, write_pipeline, capsys, use_instrumented_local):
    path = write_pipeline(PIPE.replace("N", "1"))
    assert _run(path, capsys)[0] == 0
    image = project / "out/own/steps/a/a-1.png"
    image.write_bytes(b"edited by hand")
    code, text = _run(path, capsys, "--fresh")
    assert code == 0 and image.read_bytes() == b"edited by hand"
    assert f"kept {image}" in text and "--force-out" in text
    code, text = _run(path, capsys, "--fresh", "--force-out")
    assert code == 0 and image.read_bytes().startswith(b"\x89PNG")
    assert "kept" not in text


def test_a_users_file_in_a_folder_without_manifest_is_not_overwritten(project, write_pipeline, capsys,
                                                                      use_instrumented_local):
    path = write_pipeline(PIPE.replace("N", "1") + "outputs:\n  poster: '{{ steps.a.images[0] }}'\n")
    poster = project / "out/own/poster.png"
    poster.parent.mkdir(parents=True)
    poster.write_bytes(b"the user's own poster")
    code, text = _run(path, capsys)
    assert code == 0
    assert poster.read_bytes() == b"the user's own poster"
    assert f"kept {poster}" in text
    assert _run(path, capsys, "--force-out")[0] == 0
    assert poster.read_bytes().startswith(b"\x89PNG")


def test_a_symlinked_step_folder_leading_out_is_never_written_through(project, write_pipeline, capsys, victim,
                                                                      use_instrumented_local):
    path = write_pipeline(PIPE.replace("N", "1"))
    (project / "out/own/steps").mkdir(parents=True)
    (project / "out/own/steps/a").symlink_to(victim.parent)
    code, text = _run(path, capsys)
    assert code == 0
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim.txt"]
    assert "leads outside" in text


@pytest.mark.parametrize("value", ["../x", "/etc/passwd", "a/b", "", ".", "..", ".hidden", "x\x00y", 5, None, ["a"]])
def test_unsafe_names_are_refused(tmp_path, value):
    assert not is_safe_name(value)
    assert named(tmp_path, value, ".json") is None


@pytest.mark.parametrize("value", ["../" + "a" * 61, "A" * 64, "a" * 63, "a" * 65, "/etc/passwd", 7, None])
def test_hashes_must_be_64_lower_hex(value):
    assert not is_sha256(value)


def test_confined_refuses_climbing_absolute_paths_and_symlinks_out(tmp_path, victim):
    (tmp_path / "inner").mkdir()
    (tmp_path / "out-link").symlink_to(victim.parent)
    (tmp_path / "in-link").symlink_to(tmp_path / "inner")
    for bad in ["../x", "inner/../../x", str(victim), "out-link/victim.txt", "", "inner\\..\\..\\x", 3]:
        assert confined(tmp_path, bad) is None, bad
    assert confined(tmp_path, "inner/file.png") == tmp_path / "inner/file.png"
    assert confined(tmp_path, "in-link/file.png") == tmp_path / "in-link/file.png"
    assert is_safe_name("product-ad") and is_safe_name("ad@row-3") and is_sha256("ab" * 32)


def test_a_symlink_deep_in_the_path_or_swapped_in_later_is_still_refused(tmp_path, victim):
    """The quick check walks only the components below the folder: a link at any depth, one made
    after an earlier check of the same folder, and a folder reached through a link all get the
    same answer as resolving the whole path."""
    project = tmp_path / "project"
    (project / "a/b").mkdir(parents=True)
    assert confined(project, "a/b/c/d.png") == project / "a/b/c/d.png"  # not there yet: inside
    (project / "a/b/c").symlink_to(victim.parent)  # made after the folder was first resolved
    assert confined(project, "a/b/c/d.png") is None
    (project / "a/b/loop").symlink_to(project / "a")  # a link that stays inside is fine
    assert confined(project, "a/b/loop/b/x.png") == project / "a/b/loop/b/x.png"
    via_link = tmp_path / "project-link"
    via_link.symlink_to(project)
    assert confined(via_link, "a/b/x.png") == via_link / "a/b/x.png"
    assert confined(via_link, "a/b/c/victim.txt") is None
    assert not is_inside(victim, project) and is_inside(project / "a/../a/b", project)


def test_a_folder_re_pointed_or_named_relatively_is_resolved_again(tmp_path, victim, monkeypatch):
    """The folder's resolution is remembered only for the file it is now: a symlinked folder
    pointed elsewhere, or a relative name read from another current folder, is resolved again."""
    first, second = tmp_path / "e1", tmp_path / "e2"
    (first / "steps").mkdir(parents=True)
    (second).mkdir()
    (second / "steps").symlink_to(victim.parent)
    folder = tmp_path / "out-p"
    folder.symlink_to(first)
    assert confined(folder, "steps/x.png") == folder / "steps/x.png"
    folder.unlink()
    folder.symlink_to(second)  # re-pointed: steps/ now leads out
    assert confined(folder, "steps/x.png") is None
    for name, target, expected in (("a", first, Path("o/steps/x.png")), ("b", second, None)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "o").symlink_to(target)
        monkeypatch.chdir(tmp_path / name)  # the same relative name, another folder
        assert confined(Path("o"), "steps/x.png") == expected
    assert not is_inside(first / "missing" / "a\x00b", first)  # no path holds a NUL
    (first / "plain").write_text("a file")
    assert confined(first, "plain/x") == first / "plain/x"  # as resolving the whole path says
