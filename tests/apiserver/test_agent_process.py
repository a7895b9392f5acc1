"""`ipvsctl agent` as a process: JSON logs off a TTY, probes and metrics served, SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from kubernetes_asyncio.client.api_client import ApiClient

from tests.agent.live import ensure_node
from tests.apiserver.harness import free_port

pytestmark = pytest.mark.apiserver


async def get(url: str) -> tuple[int, str]:
    """GET a loopback URL; status 0 when nothing answers yet."""
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status, await response.text()
    except aiohttp.ClientError:
        return 0, ""


async def test_agent_process_serves_and_stops_on_sigterm(
    admin_api: ApiClient, admin_kubeconfig: Path, tmp_path: Path
) -> None:
    """Ready within seconds, /metrics answers, and SIGTERM ends it with status 0 and agent_stopped logged."""
    await ensure_node(admin_api)
    health, metrics = free_port(), free_port()
    log = tmp_path / "agent.log"
    argv = [
        "agent", "--backend", "memory", "--kubeconfig", str(admin_kubeconfig),
        "--health-bind", f"127.0.0.1:{health}", "--metrics-bind", f"127.0.0.1:{metrics}",
        "--health-check-address", "127.0.0.1",
    ]  # fmt: skip
    with log.open("w") as sink:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "ipvsctl"),
            *argv,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "NODE_NAME": "worker1"},
        )
    try:
        for _ in range(600):
            assert process.returncode is None, log.read_text()
            if (await get(f"http://127.0.0.1:{health}/readyz"))[0] == 200:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"not ready within 60 s:\n{log.read_text()}")
        status, text = await get(f"http://127.0.0.1:{metrics}/metrics")
        assert (status, "ipvsctl_ready 1.0" in text) == (200, True)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert (events[0], events[-1]) == ("agent_started", "agent_stopped")
