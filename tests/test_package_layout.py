"""The package's shape: one version, py.typed, every public exception under WanflowError, light
imports for providers and the simulator, and no load <-> instances cycle."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import wanflow
from wanflow.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "wanflow"


def _loaded_after(statement: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``statement``."""
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_the_version_is_written_once_and_pyproject_reads_it(capsys):
    from wanflow import _version

    assert wanflow.__version__ == _version.__version__
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "wanflow._version.__version__"}
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"wanflow {wanflow.__version__}"


def test_py_typed_is_shipped():
    assert (SOURCE / "py.typed").is_file()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["wanflow"]


@pytest.mark.parametrize("name", ["MediaError", "ConformError", "TemplateProblem", "FrozenMismatch", "FileSystemError",
                                  "PipelineError", "UsageError", "StepFailed", "ProviderError", "StoreError",
                                  "TemplateReferenceError", "WorkspaceBusy"])
def test_every_public_exception_is_a_wanflow_error(name):
    assert issubclass(getattr(wanflow, name), wanflow.WanflowError)


def test_media_errors_stay_value_errors_and_the_limits_join_the_tree():
    from wanflow._exceptions import ResultGone, TemplateLimitError

    assert issubclass(wanflow.MediaError, ValueError) and issubclass(wanflow.ConformError, ValueError)
    assert issubclass(TemplateLimitError, wanflow.WanflowError)
    assert issubclass(ResultGone, wanflow.ProviderError)


def test_providers_and_the_request_load_no_templates_and_no_rules():
    loaded = _loaded_after("import wanflow.pipelines.request\nimport wanflow.providers.registry")
    assert not {"jinja2", "wanflow.pipelines.resolve", "wanflow.pipelines.load", "wanflow.catalog.rules"} & loaded


def test_instances_do_not_import_loading():
    assert "wanflow.pipelines.load" not in _loaded_after("import wanflow.pipelines.instances")


HEAVY = {"httpx", "numpy", "av", "jinja2", "jsonschema", "PIL", "rich"}  # not anyio: the runner is built on it
CACHED_PIPELINE = """\
wanflow: 1
name: light
defaults: {seed: 1}
steps:
  first: {model: wan2.6-t2i, prompt: "a red kite", params: {size: 1104*1472, n: 1}}
  second: {model: wan2.6-t2i, prompt: "a blue kite", params: {size: 1104*1472, n: 1}, needs: [first]}
"""


def _cli_modules(args: list[str], cwd: Path) -> tuple[int, set[str]]:
    """Run the ``wanflow`` command in a fresh interpreter: its exit code and the modules it loaded."""
    listing = cwd / "modules.txt"
    code = ("import sys\nfrom wanflow.cli.entry import main\nsys.argv = ['wanflow', *sys.argv[1:]]\ncode = main()\n"
            f"open({str(listing)!r}, 'w').write('\\n'.join(sorted(sys.modules)))\nsys.exit(code)")
    env = {name: value for name, value in __import__("os").environ.items() if not name.startswith("WANFLOW")}
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    return done.returncode, set(listing.read_text().split())


def test_help_loads_nothing_heavy(tmp_path):
    code, loaded = _cli_modules(["--help"], tmp_path)
    assert code == 0
    assert not {name.split(".")[0] for name in loaded} & (HEAVY | {"anyio", "yaml"})


def test_a_fully_cached_run_loads_no_http_client_media_libraries_templates_or_schema_checker(tmp_path):
    (tmp_path / "light.yaml").write_text(CACHED_PIPELINE)
    first, loaded = _cli_modules(["run", "light.yaml"], tmp_path)
    assert first == 0 and {"PIL", "jsonschema", "yaml"} <= {name.split(".")[0] for name in loaded}  # it generated and validated
    again, loaded = _cli_modules(["run", "light.yaml"], tmp_path)  # the HTML report too (its thumbnails are kept)
    assert again == 0
    # nor PyYAML: the pipeline is recalled parsed (pipelines/parsed_cache.py), the catalog from its kept copy
    assert not {name.split(".")[0] for name in loaded} & (HEAVY | {"yaml", "tomllib", "secrets", "socket", "concurrent"})
    # the no-op fast path (execute/noop.py): no event loop, and none of the engine's unit machinery
    assert not {"asyncio", "anyio._backends._asyncio", "wanflow.execute.unit"} & loaded
    _, planned = _cli_modules(["plan", "light.yaml"], tmp_path)
    assert not {name.split(".")[0] for name in planned} & HEAVY


def test_the_result_checks_tiers_are_the_renderers():
    from wanflow.execute import result_check
    from wanflow.preview import images, video

    assert result_check.IMAGE_TIERS == images.TIER_AREAS and result_check.VIDEO_TIERS == video.TIER_AREAS
