"""Shared fixtures: isolated project folders, pipeline writers and an instrumented provider."""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

import wanflow
from sim_helpers import SimStarter
from wanflow.pipelines.request import StepRequest
from wanflow.providers.base import GenerationContext, GenerationResult
from wanflow.providers.local import LocalPreviewProvider

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture(autouse=True, scope="session")
def _private_user_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Learned task durations go to a folder of this test session, never the user's real cache
    (subprocesses inherit it; their environments drop WANFLOW_* variables, not XDG_*)."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("user-cache"))
    os.environ.pop("WANFLOW_CACHE_DIR", None)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder used as the working directory."""
    monkeypatch.chdir(tmp_path)
    for name in ("WANFLOW_STATE_DIR", "WANFLOW_OUT_DIR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimStarter]:
    """``sim(**knobs)`` starts a simulator that takes ``sim_helpers.SECRET``; all stop after the test."""
    starter = SimStarter(tmp_path)
    yield starter
    starter.close()


@pytest.fixture
def s3_server() -> Iterator[dict[str, str]]:
    """A moto S3 server on loopback with the bucket ``team``; yields the environment that reaches it."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        pytest.skip(f"moto[server] is not installed ({error}); pip install -e '.[test,store]'")
    pytest.importorskip("s3fs", reason="s3fs is not installed; pip install -e '.[store]'")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    try:
        server.start()
    except Exception as error:  # pragma: no cover - depends on the machine
        pytest.skip(f"the moto S3 server could not start on 127.0.0.1: {error}")
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "FSSPEC_S3_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    import boto3

    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket="team")
    yield env
    server.stop()


@pytest.fixture
def workspace(project: Path) -> wanflow.Workspace:
    return wanflow.Workspace.discover(project)


@pytest.fixture
def write_pipeline(project: Path) -> Callable[..., Path]:
    """Write YAML text (dedented) to a pipeline file in the project and return its path."""

    def write(text: str, name: str = "pipe.yaml") -> Path:
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), "utf-8")
        return path

    return write


@dataclass
class Call:
    step_id: str
    prompt: str | None
    started: float
    finished: float


@dataclass
class Recorder:
    """Every generate() call the instrumented provider received."""

    calls: list[Call] = field(default_factory=list)
    delay: float = 0.0
    fail_steps: set[str] = field(default_factory=set)

    def steps(self) -> list[str]:
        return [call.step_id for call in self.calls]


class InstrumentedProvider(LocalPreviewProvider):
    """The real local provider, plus call recording, an optional delay and injected failures."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def generate(self, request: StepRequest, context: GenerationContext) -> GenerationResult:
        started = time.monotonic()
        if self.recorder.delay:
            await anyio.sleep(self.recorder.delay)
        if request.step_id in self.recorder.fail_steps:
            self.recorder.calls.append(Call(request.step_id, request.prompt, started, time.monotonic()))
            raise wanflow.ProviderError(f"injected failure for {request.step_id}")
        result = await super().generate(request, context)
        self.recorder.calls.append(Call(request.step_id, request.prompt, started, time.monotonic()))
        return result


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def run_with(recorder: Recorder, workspace: wanflow.Workspace) -> Callable[..., wanflow.RunResult]:
    """Run a pipeline file with the instrumented provider standing in for ``local``."""

    def run(path: Path, **options: object) -> wanflow.RunResult:
        overrides = options.pop("overrides", None)
        result = wanflow.run(path, vars=overrides, workspace=workspace, report=False,
                             providers={"local": lambda project: InstrumentedProvider(recorder)}, **options)
        assert isinstance(result, wanflow.RunResult)
        return result

    return run


@pytest.fixture
def use_instrumented_local(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Make the CLI's ``local`` provider the instrumented one."""
    from wanflow.providers import registry as providers

    monkeypatch.setitem(providers.BUILTIN_PROVIDERS, "local", lambda project: InstrumentedProvider(recorder))  # type: ignore[index]
    return recorder


TWO_BRANCHES = """
name: branches
defaults: {seed: 1}
steps:
  left:
    model: wan2.6-t2i
    prompt: a left thing
    params: {size: 1280*1280, n: 1}
  right:
    model: wan2.6-t2i
    prompt: a right thing
    params: {size: 1280*1280, n: 1}
"""

CHAIN = """
name: chain
vars: {subject: a teapot}
defaults: {seed: 42}
steps:
  hero:
    model: wan2.6-t2i
    prompt: "{{ vars.subject }} on a table"
    params: {size: 1280*1280, n: 2}
  edit:
    model: wan2.6-image
    images: ["{{ steps.hero.images[0] }}"]
    prompt: make it blue
    params: {n: 1}
  other:
    model: wan2.6-t2i
    prompt: an unrelated landscape
    params: {size: 1280*1280, n: 1}
outputs:
  final: "{{ steps.edit.images[0] }}"
"""
