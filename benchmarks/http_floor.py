"""The HTTP client's floor: CPU per step of the bare exchanges a remote step needs, without wanflow.

A remote step is at least three HTTP exchanges with the service: the create call, one status
poll (the simulator finishes tasks at once), and the download of the result. This script makes
exactly those exchanges with httpx, at the same concurrency and with the same bodies, headers and
connection limits as wanflow's DashScope client, and reports their CPU time per step. The batch
benchmark subtracts it to get what wanflow itself adds.

Usage: python benchmarks/http_floor.py BASE_URL STEPS CONCURRENCY   (prints JSON)
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
from pathlib import Path

import anyio
import httpx

from wanflow.pipelines.load import load_pipeline
from wanflow.pipelines.static_checks import static_requests
from wanflow.providers.dashscope import DashScopeProtocol
from wanflow.providers.remote import CONNECTION_LIMITS

PIPELINE = """
name: floor
steps:
  hero: {model: wan2.6-t2i, prompt: "a thing", params: {size: 1280*1280, n: 1}, seed: 1}
"""


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _exchanges(base_url: str, steps: int, concurrency: int, folder: Path) -> float:
    (folder / "floor.yaml").write_text(PIPELINE)
    request = static_requests(load_pipeline(folder / "floor.yaml"), "dashscope")["hero"]
    protocol = DashScopeProtocol()
    call = protocol.create_call(request, {})
    headers = {"Authorization": "Bearer sim-key", "Content-Type": "application/json", **call.headers}
    gate = anyio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=CONNECTION_LIMITS) as api, \
            httpx.AsyncClient(limits=CONNECTION_LIMITS, follow_redirects=True) as downloads:

        async def one(index: int) -> None:
            async with gate:
                created = (await api.post(call.path, json=call.body, headers=headers)).json()
                task_id = created["output"]["task_id"]
                state = (await api.get(protocol.task_path(task_id), headers=headers)).json()
                url = state["output"]["choices"][0]["message"]["content"][0]["image"]
                async with downloads.stream("GET", url) as response:
                    # Written as wanflow writes downloads (remote.py); a thread hop would skew the floor.
                    with open(folder / f"{index}.png", "wb") as handle:  # noqa: ASYNC230 - mirrors wanflow on purpose
                        async for chunk in response.aiter_bytes():
                            handle.write(chunk)

        started = _cpu()
        async with anyio.create_task_group() as group:
            for index in range(steps):
                group.start_soon(one, index)
        return _cpu() - started


def main() -> None:
    base_url, steps, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with tempfile.TemporaryDirectory() as folder:
        cpu = anyio.run(_exchanges, base_url, steps, concurrency, Path(folder))
    print(json.dumps({"steps": steps, "http_cpu_ms_per_step": round(cpu / steps * 1000, 2)}))


if __name__ == "__main__":
    main()
