"""The HTML report as files: written after every run, self-contained, cached thumbnails, failures shown.

(tests/report/test_report_browser.py opens the same pages in Chromium.)
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from conftest import CHAIN, EXAMPLES
from wanflow.cli.main import main

FAN_OUT = """
name: fan
defaults: {seed: 5}
steps:
  hero:
    model: wan2.6-t2i
    prompt: a red kite
    params: {size: 1280*1280, n: 2}
  edit:
    model: wan2.6-image
    for_each: "{{ steps.hero.images }}"
    images: ["{{ item }}"]
    prompt: "variant {{ index }} in blue"
    params: {n: 1}
"""


def _links(page: Path) -> list[str]:
    text = page.read_text("utf-8")
    return [unquote(link) for link in re.findall(r'(?:src|href|poster)="([^"#][^"]*)"', text) if not link.startswith("data:")]


def _assert_self_contained(page: Path, root: Path) -> None:
    text = page.read_text("utf-8")
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text, "no CDN"
    for link in _links(page):
        target = (page.parent / link).resolve()
        assert target.is_file(), f"{page.name}: {link} is missing"
        assert target.is_relative_to(root.resolve()), f"{link} leaves the report folder"


def test_every_run_writes_a_self_contained_report(write_pipeline, capsys, project):
    assert main(["run", str(write_pipeline(CHAIN))]) == 0
    out = capsys.readouterr().out
    assert "report: out/chain/index.html" in out
    page = project / "out/chain/index.html"
    _assert_self_contained(page, project / "out/chain")
    text = page.read_text("utf-8")
    for step in ("hero", "edit", "other"):
        assert f'id="step-{step}"' in text
    assert "a teapot on a table" in text and "new: no earlier result" in text and "wan2.6-t2i" in text
    assert "<svg" in text and "flowchart LR" in text  # the graph, and its Mermaid source
    thumbs = sorted((project / "out/chain/index_files/thumbs").iterdir())
    assert thumbs and all(path.suffix == ".jpg" for path in thumbs)


def test_thumbnails_are_made_once_per_content_hash(write_pipeline, capsys, project):
    path = str(write_pipeline(CHAIN))
    assert main(["run", path]) == 0
    cache = project / ".wanflow/thumbs"
    made = {path: path.stat().st_mtime_ns for path in cache.rglob("*.jpg")}
    assert made
    assert main(["run", path]) == 0  # all cached: same outputs, same thumbnails
    assert main(["report"]) == 0
    assert {path: path.stat().st_mtime_ns for path in cache.rglob("*.jpg")} == made


def test_report_of_an_older_run_uses_its_own_files(write_pipeline, capsys, project):
    path = str(write_pipeline(CHAIN))
    assert main(["run", path, "--no-report"]) == 0
    assert not (project / "out/chain/index.html").exists()
    assert main(["run", path, "--var", "subject=a vase", "--no-report"]) == 0
    capsys.readouterr()
    assert main(["report", "latest~1", "-o", str(project / "old/report.html")]) == 0
    assert capsys.readouterr().out.strip() == "old/report.html"
    page = project / "old/report.html"
    _assert_self_contained(page, project / "old")
    text = page.read_text("utf-8")
    assert "a teapot on a table" in text and "a vase" not in text
    # The out/ files now hold the newer run's pixels, so the older ones were copied from the store.
    assert any(link.startswith("report_files/media/") for link in _links(page))


def test_failures_and_warnings_are_shown(write_pipeline, capsys, project, use_instrumented_local):
    use_instrumented_local.fail_steps = {"hero"}
    assert main(["run", str(write_pipeline(CHAIN))]) == 1
    text = (project / "out/chain/index.html").read_text("utf-8")
    assert 'id="problems"' in text and "injected failure for hero" in text
    assert "upstream &#x27;hero&#x27; failed" in text


def test_report_can_be_switched_off_in_the_project(write_pipeline, capsys, project):
    (project / "wanflow.toml").write_text("[run]\nreport = false\n", "utf-8")
    assert main(["run", str(write_pipeline(CHAIN))]) == 0
    assert not (project / "out/chain/index.html").exists()


def test_fan_out_steps_show_every_item(write_pipeline, capsys, project):
    assert main(["run", str(write_pipeline(FAN_OUT))]) == 0
    text = (project / "out/fan/index.html").read_text("utf-8")
    card = text[text.index('id="step-edit"'):]
    assert card.count("<img") >= 2 and "2 items" in card
    assert "for each × 2" in text  # the graph node is a stack saying how many


def test_graph_command_shows_fan_out(capsys):
    assert main(["graph", str(EXAMPLES / "hero-variants/hero-variants.yaml")]) == 0
    graph = capsys.readouterr().out
    assert 'animate[["animate<br/><small>wan2.6-i2v</small><br/><small>for each × 4</small>"]]' in graph
    assert "hero -- for each --> animate" in graph
    assert main(["graph", str(EXAMPLES / "product-ad/product-ad.yaml")]) == 0
    assert "for each" not in capsys.readouterr().out


def test_interleaved_text_is_shown(write_pipeline, capsys, project):
    path = write_pipeline("""
        name: inter
        defaults: {seed: 2}
        steps:
          story:
            model: wan2.6-image
            prompt: a short comic of a cat finding a red hat
            params: {enable_interleave: true, max_images: 2}
        """)
    assert main(["run", str(path)]) == 0
    text = (project / "out/inter/index.html").read_text("utf-8")
    assert '<pre class="text">' in text and "Request: a short comic of a cat finding a red hat" in text
