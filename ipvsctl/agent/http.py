"""The agent's HTTP endpoints: the probes ``/livez``, ``/healthz``, ``/readyz`` (health bind), ``/metrics``.

``/metrics`` is on the metrics bind; when both binds are the same address one listener answers every path;
any other path is 404.
The listeners themselves (timeouts, size and connection limits) are ``httpserver``'s.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from ipvsctl.agent.httpserver import DEFAULT_LIMITS, Bind, Handler, Limits, Listener, ServerError, listen
from ipvsctl.agent.httpwire import JSON_TYPE, Response, error_response
from ipvsctl.agent.metrics import AgentMetrics

__all__ = ["Bind", "HealthReport", "ServerError", "serve_endpoints"]
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class HealthReport:
    """An answer to a probe: ok or not, and the details as JSON."""

    ok: bool
    details: Mapping[str, object]


def _probe(report: Callable[[], HealthReport]) -> Callable[[], Response]:
    def answer() -> Response:
        found = report()
        return Response(200 if found.ok else 503, json.dumps(found.details, sort_keys=True).encode(), JSON_TYPE)

    return answer


def _routes(routes: Mapping[str, Callable[[], Response | Awaitable[Response]]]) -> Handler:
    def answer(path: str) -> Response | Awaitable[Response]:
        route = routes.get(path)
        return route() if route is not None else error_response(404)

    return answer


@contextlib.asynccontextmanager
async def serve_endpoints(
    *,
    health: Bind,
    metrics_bind: Bind,
    probes: Mapping[str, Callable[[], HealthReport]],
    metrics: AgentMetrics,
    before_scrape: Callable[[], Awaitable[None]] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> AsyncIterator[dict[str, int]]:
    """Serve the probes (by path) and the metrics while the context lasts; yields the bound ports by path.

    ``before_scrape`` runs before each /metrics answer (the traffic metrics' stats dump, when one is due).
    """
    answers: dict[str, Callable[[], Response | Awaitable[Response]]] = {
        path: _probe(report) for path, report in probes.items()
    }

    async def scrape() -> Response:
        if before_scrape is not None:
            await before_scrape()
        return Response(200, metrics.exposition(), METRICS_TYPE)

    exposition: dict[str, Callable[[], Response | Awaitable[Response]]] = {"/metrics": scrape}
    together = health == metrics_bind
    layout = [(health, answers | exposition)] if together else [(health, answers), (metrics_bind, exposition)]
    listeners: list[Listener] = []
    ports: dict[str, int] = {}
    try:
        for bind, routes in layout:
            listener = await listen(bind, _routes(routes), limits=limits, on_drop=metrics.dropped("agent"))
            listeners.append(listener)
            ports.update(dict.fromkeys(routes, listener.port))
        yield ports
    finally:
        for listener in listeners:
            await listener.close()
