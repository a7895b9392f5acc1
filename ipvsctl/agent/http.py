"""The agent's HTTP endpoints: ``/healthz`` and ``/readyz`` (health bind), ``/metrics`` (metrics bind).

When both binds are the same address one server answers all three paths.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from ipvsctl.agent.metrics import AgentMetrics
from ipvsctl.errors import IpvsctlError

__all__ = ["Bind", "HealthReport", "ServerError", "serve_endpoints", "start_site"]

JSON_TYPE = "application/json"


class ServerError(IpvsctlError):
    """An HTTP server could not listen (address in use, no permission)."""


@dataclass(frozen=True, slots=True)
class Bind:
    """``host:port`` a server listens on (port 0: any free port, for tests)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class HealthReport:
    """An answer to a probe: ok or not, and the details as JSON."""

    ok: bool
    details: Mapping[str, object]


async def start_site(app: web.Application, bind: Bind) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``bind``; the runner (to clean up) and the port actually bound."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, bind.host, bind.port, reuse_address=True)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise ServerError(f"cannot listen on {bind}: {error.strerror or error}") from None
    server = site._server
    sockets = getattr(server, "sockets", None) or ()
    port = sockets[0].getsockname()[1] if sockets else bind.port
    return runner, int(port)


def _probe(report: Callable[[], HealthReport]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(_request: web.Request) -> web.Response:
        answer = report()
        return web.Response(
            status=200 if answer.ok else 503, text=json.dumps(answer.details, sort_keys=True), content_type=JSON_TYPE
        )

    return handler


@contextlib.asynccontextmanager
async def serve_endpoints(
    *,
    health: Bind,
    metrics_bind: Bind,
    healthz: Callable[[], HealthReport],
    readyz: Callable[[], HealthReport],
    metrics: AgentMetrics,
) -> AsyncIterator[dict[str, int]]:
    """Serve the probes and the metrics while the context lasts; yields the bound ports by path."""

    async def metrics_handler(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": "text/plain; version=0.0.4"})

    probes = [web.get("/healthz", _probe(healthz)), web.get("/readyz", _probe(readyz))]
    exposition = [web.get("/metrics", metrics_handler)]
    layout = (
        [(health, probes + exposition)] if health == metrics_bind else [(health, probes), (metrics_bind, exposition)]
    )
    runners: list[web.AppRunner] = []
    ports: dict[str, int] = {}
    try:
        for bind, routes in layout:
            app = web.Application()
            app.add_routes(routes)
            runner, port = await start_site(app, bind)
            runners.append(runner)
            for route in routes:
                ports[route.path] = port
        yield ports
    finally:
        for runner in runners:
            await runner.cleanup()
