"""The HTML report opened in a real browser (headless Chromium driven by Playwright).

Every image must load, every video must have its metadata, the matrix grid must have its rows and
columns, and the console must stay free of errors, all from file:// with no network.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package (the `test` extra); without
either the module is skipped with the reason. `.ci/run` installs chromium when it is missing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import EXAMPLES
from wanflow.cli.main import main

CHROMIUM = os.environ.get("WANFLOW_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)", allow_module_level=True)
if importlib.util.find_spec("playwright") is None:
    pytest.skip("playwright is not installed (pip install -e '.[test]')", allow_module_level=True)

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's main command and the two multi-instance examples, run once for the module."""
    root = tmp_path_factory.mktemp("report")
    common = ["--state-dir", str(root / ".wanflow"), "--out-dir", str(root / "out")]
    assert main(["run", str(EXAMPLES / "product-ad/product-ad.yaml"), "--no-lock", *common]) == 0
    assert main(["run", str(EXAMPLES / "style-matrix/style-matrix.yaml"), "--no-lock", *common]) == 0
    assert main(["run", str(EXAMPLES / "batch-products/batch-products.yaml"), "--batch",
                 str(EXAMPLES / "batch-products/products.csv"), "--no-lock", *common]) == 0
    return root


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the whole module (starting one costs about a second); Playwright gives it a
    new, empty profile folder."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


class Opened:
    """A page with its console errors, failed requests and uncaught exceptions collected."""

    def __init__(self, browser: Browser, path: Path) -> None:
        self.page: Page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("requestfailed", lambda request: self.errors.append(f"failed: {request.url}"))
        self.page.goto(path.resolve().as_uri(), wait_until="load")

    def images(self) -> list[dict[str, Any]]:
        """Every shown image, loaded eagerly (lazy ones below the fold included)."""
        return self.page.evaluate("""async () => {
            const shown = [...document.images].filter(img => img.offsetParent !== null);
            await Promise.all(shown.map(img => {
                img.loading = 'eager';
                return img.complete ? null : new Promise(done => { img.onload = img.onerror = done; });
            }));
            return shown.map(img => ({src: img.getAttribute('src'), width: img.naturalWidth}));
        }""")

    def videos(self) -> list[dict[str, Any]]:
        """Every video once its metadata has arrived (or 20 s have passed)."""
        self.page.wait_for_function("[...document.querySelectorAll('video')].every(v => v.readyState >= 1 || v.error)",
                                    timeout=20_000)
        return self.page.evaluate("""() => [...document.querySelectorAll('video')].map(v => ({
            src: v.getAttribute('src'), ready: v.readyState, duration: v.duration, error: v.error && v.error.code,
            poster: v.getAttribute('poster')}))""")

    def close(self) -> None:
        self.page.close()


def _check_media(opened: Opened, expect_videos: int | None = None) -> None:
    images = opened.images()
    assert images, "the page shows no image"
    broken = [image["src"] for image in images if not image["width"]]
    assert not broken, f"images that did not load: {broken}"
    videos = opened.videos()
    if expect_videos is not None:
        assert len(videos) == expect_videos
    bad = [video for video in videos if video["ready"] < 1 or not video["duration"] or video["duration"] <= 0]
    assert not bad, f"videos without metadata: {bad}"
    assert not opened.errors, f"console errors: {opened.errors}"


def test_single_run_report_loads_every_image_and_video(project, browser):
    report = project / "out/product-ad/index.html"
    assert report.is_file(), "wanflow run writes out/<pipeline>/index.html"
    opened = Opened(browser, report)
    try:
        _check_media(opened, expect_videos=4)  # two named outputs and the two i2v step cards
        page = opened.page
        assert page.locator("article.card").count() == 5
        assert page.locator("svg.graph g.step-node").count() == 5
        hero = page.locator("#step-hero")
        assert "A red running sneaker on a white marble pedestal" in hero.inner_text()
        assert "seed" in hero.inner_text() and "wan2.6-t2i" in hero.inner_text()
        # A thumbnail opens the full-size image in the overlay.
        page.locator("#step-hero a.zoom").first.click()
        assert page.locator(".lightbox.open img").evaluate("img => img.complete && img.naturalWidth") == 1280
        assert not opened.errors
    finally:
        opened.close()


def test_matrix_report_is_a_three_by_two_grid(project, browser):
    opened = Opened(browser, project / "out/style-matrix/index.html")
    try:
        _check_media(opened, expect_videos=0)
        grid = opened.page.locator("table.grid")
        assert grid.count() == 1
        assert grid.get_attribute("data-columns") == "3" and grid.get_attribute("data-rows") == "2"
        headers = grid.locator("thead th").all_inner_texts()[1:]
        assert headers == ["watercolor", "neon noir", "clay stop-motion"]
        assert grid.locator("tbody th").all_inner_texts() == ["morning sun", "candlelight"]
        assert grid.locator("tbody td[data-instance] img").count() == 6
        # Each cell leads to the instance's own report, which loads as cleanly.
        link = grid.locator("tbody td[data-instance] a").first.get_attribute("href")
        assert link is not None
        instance = Opened(browser, (project / "out/style-matrix" / link).resolve())
        try:
            _check_media(instance, expect_videos=0)
            assert instance.page.locator("article.card").count() == 2
        finally:
            instance.close()
    finally:
        opened.close()


def test_batch_report_is_a_paged_table(project, browser):
    opened = Opened(browser, project / "out/batch-products/index.html")
    try:
        _check_media(opened, expect_videos=0)
        rows = opened.page.locator("table.batch tbody tr")
        assert rows.count() == 3
        assert opened.page.locator("#batch-pager .where").inner_text() == "page 1 of 1 (3 rows)"
        assert "3 instances: 3 ok, 0 failed" in opened.page.locator("header.top").inner_text()
    finally:
        opened.close()


def test_long_batch_tables_page_and_filter(project, browser, monkeypatch):
    """A thousand rows would be paged the same way: hidden rows never fetch their thumbnails."""
    from wanflow.records.runs import load_history
    from wanflow.report import html
    from wanflow.report.writer import write_report
    from wanflow.state.workspace import Workspace

    monkeypatch.setattr(html, "PAGE_SIZE", 2)
    workspace = Workspace.discover(project, state_dir=project / ".wanflow", out_dir=project / "out")
    history = load_history(workspace)
    target = write_report(workspace, history.find("latest", "batch-products"), project / "paged/report.html")
    opened = Opened(browser, target)
    try:
        page = opened.page
        assert page.locator("#batch-pager .where").inner_text() == "page 1 of 2 (3 rows)"
        assert page.locator("table.batch tbody tr:not(.off)").count() == 2
        page.locator("#batch-pager .next").click()
        assert page.locator("table.batch tbody tr:not(.off)").count() == 1
        _check_media(opened, expect_videos=0)
        assert not any("/out/" in (image["src"] or "") for image in opened.images()), "the folder is self-contained"
    finally:
        opened.close()


# --- tampered run records: every payload stays text, nothing is read or written outside -----------

PAYLOADS = [
    "<img src=x onerror=\"document.title='PWNED'\">",
    "\"><script>document.title='PWNED'</script>",
    "'><svg onload=\"document.title='PWNED'\">",
    "</style><script>document.title='PWNED'</script>",
    "</title><script>document.title='PWNED'</script>",
    "javascript:document.title='PWNED'",
    "<iframe srcdoc=\"<script>parent.document.title='PWNED'</script>\">",
]
TAMPER_PIPE = ("name: tamper\nsteps:\n  a: {model: wan2.6-t2i, prompt: a red teapot, params: {n: 1}}\n"
               "  b: {model: wan2.6-t2i, prompt: a green teapot, params: {n: 1}}\n"
               "outputs:\n  hero: '{{ steps.a.images[0] }}'\n")


def _tampered_project(root: Path) -> tuple[Path, Path]:
    (root / "tamper.yaml").write_text(TAMPER_PIPE)
    common = ["--state-dir", str(root / ".wanflow"), "--out-dir", str(root / "out")]
    # In a process of its own: the browser's event loop runs in this one.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
           "WANFLOW_CONFIG": "/nonexistent/config.toml"}
    done = subprocess.run([sys.executable, "-m", "wanflow", "run", str(root / "tamper.yaml"), "--no-lock", *common],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    record = next((root / ".wanflow/runs").glob("*.json"))
    return record, root


def _inert(opened: Opened) -> None:
    page = opened.page
    assert page.title() != "PWNED"
    dangerous = page.evaluate("""() => [...document.querySelectorAll('*')].filter(el =>
        [...el.attributes].some(a => a.name.startsWith('on')) || el.tagName === 'IFRAME'
        || (el.tagName === 'SCRIPT' && !el.textContent.includes('lightbox'))
        || [...el.attributes].some(a => ['href', 'src', 'poster', 'action', 'formaction', 'xlink:href'].includes(a.name)
                                        && a.value.trim().toLowerCase().startsWith('javascript:'))).length""")
    assert dangerous == 0


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_in_every_text_field_of_a_record_stay_text(tmp_path, browser, payload, capsys):
    import json

    record_path, root = _tampered_project(tmp_path)
    record = json.loads(record_path.read_text())
    step = record["steps"]["a"]
    for key in ("reason", "model", "provider", "seed_source", "error", "status"):
        step[key] = payload
    step["warnings"] = [payload]
    step["request"]["prompt"] = step["request"]["negative_prompt"] = payload
    step["request"]["params"][payload] = payload
    step["provider_info"] = {"task_ids": [payload], "cost_source": payload}
    step["adaptations"] = [{"what": payload}]
    step["outputs"][0]["field"] = step["outputs"][0]["media_type"] = payload
    record["vars"] = {payload: payload}
    record["warnings"] = [payload]
    record["output_errors"] = {payload: payload}
    record["steps"][payload] = record["steps"].pop("b")
    record["notice"], record["preview"], record["status"] = payload, True, payload
    record_path.write_text(json.dumps(record))
    code = main(["report", "latest", "--state-dir", str(root / ".wanflow"), "--out-dir", str(root / "out")])
    assert code == 0, capsys.readouterr().err
    opened = Opened(browser, root / "out/tamper/index.html")
    try:
        _inert(opened)
        assert payload in opened.page.locator("body").inner_text()  # shown, as text
    finally:
        opened.close()


def test_a_record_with_wrong_types_is_skipped_and_its_numbers_never_reach_the_page(tmp_path, browser, monkeypatch, capsys):
    """The typed reader refuses a width that is text; and were it let through, the page still
    escapes it (numbers included)."""
    import json

    from wanflow.records import runs as run_history
    from wanflow.state import state_files

    record_path, root = _tampered_project(tmp_path)
    record = json.loads(record_path.read_text())
    record["steps"]["a"]["outputs"][0]["width"] = PAYLOADS[0]
    record["steps"]["a"]["outputs"][0]["height"] = PAYLOADS[1]
    record["steps"]["a"]["seconds"] = PAYLOADS[2]
    record["totals"]["ran"] = PAYLOADS[3]
    record_path.write_text(json.dumps(record))
    common = ["--state-dir", str(root / ".wanflow"), "--out-dir", str(root / "out")]
    assert main(["report", "latest", *common]) == 2
    err = capsys.readouterr().err
    assert f"{record_path}: steps.a.outputs.0.height" in err and "Traceback" not in err
    # Defence in depth: with the type check switched off, the page still shows no script.
    monkeypatch.setattr(run_history, "read_state", lambda path, kind: json.loads(Path(path).read_text()))
    monkeypatch.setattr(state_files, "check_state", lambda data, kind, where: data)
    (root / ".wanflow/index").exists() and [p.unlink() for p in (root / ".wanflow/index").glob("_runs.json")]
    assert main(["report", "latest", *common]) == 0, capsys.readouterr().err
    opened = Opened(browser, root / "out/tamper/index.html")
    try:
        _inert(opened)
    finally:
        opened.close()
