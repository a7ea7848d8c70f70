"""`wanflow init`: a project that validates and runs offline at once, and never overwrites."""

from __future__ import annotations

import tomllib

from wanflow.cli.main import main


def test_init_then_run_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "shop"]) == 0
    printed = capsys.readouterr().out
    assert "created shop/wanflow.toml" in printed and "next: cd shop && wanflow run shop.yaml" in printed
    root = tmp_path / "shop"
    assert tomllib.loads((root / "wanflow.toml").read_text("utf-8")) == {"paths": {}, "run": {}}  # every setting commented
    pipeline = root / "shop.yaml"
    assert pipeline.read_text("utf-8").startswith("# yaml-language-server: $schema=wanflow.schema.json")
    assert '"$schema"' in (root / "wanflow.schema.json").read_text("utf-8")
    assert (root / ".gitignore").read_text("utf-8").splitlines()[1:] == [".wanflow/", "out/"]

    monkeypatch.chdir(root)
    assert main(["validate", "shop.yaml"]) == 0
    assert main(["run", "shop.yaml"]) == 0
    assert (root / "out/shop/clip.mp4").is_file() and (root / "out/shop/index.html").is_file()
    assert (root / ".wanflow/runs").is_dir(), "the project root is the folder with wanflow.toml"


def test_init_refuses_to_overwrite_and_keeps_gitignore(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".gitignore").write_text("*.pyc\nout/", "utf-8")
    assert main(["init", "--name", "demo"]) == 0
    assert (tmp_path / ".gitignore").read_text("utf-8") == "*.pyc\nout/\n# wanflow: the cache and store, and generated outputs\n.wanflow/\n"
    before = (tmp_path / "demo.yaml").read_text("utf-8")
    (tmp_path / "demo.yaml").write_text(before + "# mine\n", "utf-8")
    capsys.readouterr()
    assert main(["init", "--name", "demo"]) == 2
    assert "already exist" in capsys.readouterr().err
    assert (tmp_path / "demo.yaml").read_text("utf-8").endswith("# mine\n")
    assert main(["init", "--name", "-bad"]) == 2
