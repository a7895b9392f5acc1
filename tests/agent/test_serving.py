"""What the agent serves: healthCheckNodePort servers, /healthz, /readyz and /metrics, on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from ipvsctl.agent.healthcheck import HealthCheckServers
from ipvsctl.agent.http import Bind, serve_endpoints
from ipvsctl.agent.httpserver import Limits
from ipvsctl.agent.node import NodeAgent
from ipvsctl.kube.views import ObjectRef
from tests.agent.conftest import StartAgent
from tests.agent.fakes import FakeClock, endpoint_slice, list_everything, service, settle
from tests.agent.rawhttp import send


def free_port() -> int:
    """A free port in the default node-port range (healthCheckNodePorts outside it are rejected)."""
    for candidate in random.sample(range(30000, 32768), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return candidate
    raise RuntimeError("no free port in 30000-32767")


async def get(port: int, path: str = "/") -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


def local_lb(port: int, **spec: Any) -> dict[str, Any]:
    return service(
        "lb",
        cluster_ip="10.0.0.50",
        type="LoadBalancer",
        externalTrafficPolicy="Local",
        healthCheckNodePort=port,
        ports=[{"port": 80, "protocol": "TCP", "nodePort": 30080}],
        **spec,
    )


def lb_slice(*endpoints: tuple[str, str]) -> dict[str, Any]:
    return endpoint_slice("lb-1", service="lb", endpoints=endpoints)


async def test_health_check_port_answers_200_with_local_endpoints(start_agent: StartAgent) -> None:
    """Two endpoints on this node: 200 and localEndpoints 2, whatever the path."""
    port = free_port()
    agent = start_agent()
    list_everything(
        agent, services=[local_lb(port)], slices=[lb_slice(("10.1.0.1", "worker1"), ("10.1.0.2", "worker1"))]
    )
    await settle()
    assert await get(port, "/healthz") == (
        200,
        {"service": {"namespace": "default", "name": "lb"}, "localEndpoints": 2},
    )


async def test_health_check_port_answers_503_without_local_endpoints(start_agent: StartAgent, clock: FakeClock) -> None:
    """Endpoints only on other nodes: 503 with localEndpoints 0; the count follows the slice."""
    port = free_port()
    agent = start_agent()
    list_everything(agent, services=[local_lb(port)], slices=[lb_slice(("10.1.0.1", "worker2"))])
    await settle()
    assert (await get(port))[0] == 503
    agent.handlers["EndpointSlice"].upsert(lb_slice(("10.1.0.1", "worker2"), ("10.1.0.3", "worker1")))
    await clock.advance(1.0)
    assert (await get(port))[1]["localEndpoints"] == 1


async def test_health_check_server_stops_with_its_service(start_agent: StartAgent, clock: FakeClock) -> None:
    """Deleting the Service closes its port; a Cluster-policy Service never gets one."""
    port = free_port()
    agent = start_agent()
    list_everything(agent, services=[local_lb(port)])
    await settle()
    assert agent.health_checks.listening == {port: agent.cache.services[next(iter(agent.cache.services))].ref}
    agent.handlers["Service"].delete(local_lb(port))
    await clock.advance(1.0)
    assert agent.health_checks.listening == {}
    try:
        status = (await get(port))[0]
    except aiohttp.ClientConnectionError:
        status = 0
    assert status == 0


async def test_health_check_port_move_follows_the_service(start_agent: StartAgent, clock: FakeClock) -> None:
    """A new healthCheckNodePort: the old port closes, the new one answers."""
    old, new = free_port(), free_port()
    agent = start_agent()
    list_everything(agent, services=[local_lb(old)])
    await settle()
    agent.handlers["Service"].upsert(local_lb(new))
    await clock.advance(1.0)
    assert list(agent.health_checks.listening) == [new]
    assert (await get(new))[1]["service"]["name"] == "lb"


async def test_probes_and_metrics_are_served(start_agent: StartAgent) -> None:
    """/readyz is 503 before the first sync and 200 after; /healthz is 200; /metrics has the agent's metrics."""
    agent = start_agent()
    async with agent_endpoints(agent) as ports:
        before = await get(ports["/readyz"], "/readyz")
        list_everything(agent, services=[service("web", cluster_ip="10.0.0.10")])
        await settle()
        after = await get(ports["/readyz"], "/readyz")
        alive = await get(ports["/healthz"], "/healthz")
        metrics = (await get(ports["/metrics"], "/metrics"))[1]
    assert (before[0], before[1]["initialSync"], after[0], alive[0]) == (503, False, 200, 200)
    assert 'ipvsctl_operations_applied_total{op="add-service"} 1.0' in metrics
    assert "ipvsctl_ready 1.0" in metrics


async def test_liveness_fails_when_a_sync_hangs(start_agent: StartAgent, clock: FakeClock) -> None:
    """A sync that has not finished after stall_after seconds makes /healthz fail."""
    agent = start_agent()
    agent.status.sync_started = clock.now()
    assert agent.status.liveness().ok
    await clock.advance(agent.status.stall_after + 1)
    assert not agent.status.liveness().ok


async def test_health_check_port_equal_to_the_agents_own_port_is_refused(start_agent: StartAgent) -> None:
    """A healthCheckNodePort equal to the health or metrics port is not served: logged and counted as an error."""
    health, metrics = free_port(), free_port()
    agent = start_agent(health_bind=Bind("127.0.0.1", health), metrics_bind=Bind("127.0.0.1", metrics))
    other = service("lb2", cluster_ip="10.0.0.51", type="LoadBalancer", externalTrafficPolicy="Local")
    other["spec"] |= {"healthCheckNodePort": metrics, "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30081}]}
    with capture_logs() as logs:
        list_everything(agent, services=[local_lb(health), other])
        await settle()
    assert agent.health_checks.listening == {}
    refused = sorted(entry["port"] for entry in logs if entry["event"] == "health_check_port_reserved")
    assert refused == sorted([health, metrics])
    assert agent.metrics.registry.get_sample_value("ipvsctl_errors_total", {"source": "health_check"}) == 2


@contextlib.asynccontextmanager
async def agent_endpoints(agent: NodeAgent) -> AsyncIterator[dict[str, int]]:
    """The agent's /healthz, /readyz and /metrics on its configured binds while inside; the ports by path."""
    config = agent.config
    async with serve_endpoints(
        health=config.health_bind,
        metrics_bind=config.metrics_bind,
        probes=agent.probes(),
        metrics=agent.metrics,
        before_scrape=agent.traffic.refresh,
    ) as ports:
        yield ports


@contextlib.asynccontextmanager
async def local_lb_listeners(agent: NodeAgent) -> AsyncIterator[dict[str, int]]:
    """The ports of the agent's /healthz listener and of a healthCheckNodePort with a local endpoint."""
    port = free_port()
    list_everything(agent, services=[local_lb(port)], slices=[lb_slice(("10.1.0.1", "worker1"))])
    await settle()
    async with agent_endpoints(agent) as ports:
        yield {"healthz": ports["/healthz"], "health-check": port}


@pytest.fixture
async def listeners(start_agent: StartAgent) -> AsyncIterator[dict[str, int]]:
    """The ports of an agent's /healthz listener and of one of its healthCheckNodePort servers."""
    async with local_lb_listeners(start_agent()) as ports:
        yield ports


@pytest.mark.parametrize("name", ["healthz", "health-check"])
async def test_bad_request_to_the_agent_gets_a_fixed_400_without_banner(listeners: dict[str, int], name: str) -> None:
    """A malformed request to /healthz's or a health-check port's listener: 400, a fixed body, no Server header."""
    reply = await send(listeners[name], b"GET /<script>x</script> HTTP/1.1\r\nBad Header\r\n\r\n")
    assert (reply.status, reply.body, reply.headers.get("server")) == (400, b"400 Bad Request\n", None)
    assert b"script" not in reply.raw


@pytest.mark.parametrize("name", ["healthz", "health-check"])
async def test_agent_answers_no_method_but_get_and_head(listeners: dict[str, int], name: str) -> None:
    """POST to /healthz's or a health-check port's listener gets 405."""
    path = "/healthz" if name == "healthz" else "/"
    assert (await send(listeners[name], f"POST {path} HTTP/1.1\r\n\r\n".encode())).status == 405


async def test_unknown_path_of_the_endpoints_is_404(listeners: dict[str, int]) -> None:
    """A path other than /healthz, /readyz and /metrics gets 404 with a fixed body."""
    reply = await send(listeners["healthz"], b"GET /debug/pprof HTTP/1.1\r\n\r\n")
    assert (reply.status, reply.body) == (404, b"404 Not Found\n")


async def test_health_check_server_applies_its_limits() -> None:
    """HealthCheckServers' listeners use the limits they are given: a slow client is dropped after the timeout."""
    servers = HealthCheckServers(address="127.0.0.1", limits=Limits(header_timeout=0.2))
    port = free_port()
    await servers.update(ObjectRef("default", "lb"), port=port, local_endpoints=1)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\n")
        async with asyncio.timeout(2):
            assert await reader.read() == b""
        writer.close()
    finally:
        await servers.close()


async def test_probe_connections_ended_unanswered_are_counted(start_agent: StartAgent) -> None:
    """A half-open connection to /healthz that times out shows in ipvsctl_http_connections_dropped_total."""
    agent = start_agent()
    config = agent.config
    async with serve_endpoints(
        health=config.health_bind,
        metrics_bind=config.metrics_bind,
        probes=agent.probes(),
        metrics=agent.metrics,
        before_scrape=agent.traffic.refresh,
        limits=Limits(header_timeout=0.1),
    ) as ports:
        _reader, writer = await asyncio.open_connection("127.0.0.1", ports["/healthz"])
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        await writer.drain()
        sample = {"listener": "agent", "reason": "timeout"}
        for _ in range(100):
            if agent.metrics.registry.get_sample_value("ipvsctl_http_connections_dropped_total", sample):
                break
            await asyncio.sleep(0.01)
        writer.close()
    assert agent.metrics.registry.get_sample_value("ipvsctl_http_connections_dropped_total", sample) == 1
