"""healthCheckNodePort servers: what cloud load balancers probe for ``externalTrafficPolicy: Local`` Services.

For each such LoadBalancer Service, an HTTP server on ``--health-check-address:healthCheckNodePort``
answers any path with 200 and ``{"service": {"namespace", "name"}, "localEndpoints": N}`` when this
node has N > 0 usable endpoints, else 503 with the same body (as kube-proxy does). Servers start and
stop as Services come and go; the count is updated in place, without restarting the server. A port the
agent itself serves (``reserved_ports``: its health and metrics ports) is refused, so a Service cannot
take or shadow them. The listeners are ``httpserver``'s (timeouts, size and connection limits).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass

import structlog

from ipvsctl.agent.httpserver import DEFAULT_LIMITS, Bind, Handler, Limits, Listener, ServerError, listen
from ipvsctl.agent.httpwire import JSON_TYPE, Response
from ipvsctl.kube.views import ObjectRef, ServiceView

__all__ = ["HealthCheckServers", "health_check_port"]


def health_check_port(service: ServiceView) -> int | None:
    """The healthCheckNodePort the agent serves for a Service, or None."""
    if service.type != "LoadBalancer" or service.external_traffic_policy != "Local":
        return None
    return service.health_check_node_port


@dataclass(slots=True)
class _Server:
    ref: ObjectRef
    local_endpoints: int
    listener: Listener | None = None  # None: could not listen yet (retried on the next update)


class HealthCheckServers:
    """One HTTP server per healthCheckNodePort; ``update`` per Service, ``close`` at the end."""

    def __init__(
        self,
        *,
        address: str,
        on_error: Callable[[], None] = lambda: None,
        reserved_ports: Collection[int] = (),
        limits: Limits = DEFAULT_LIMITS,
        on_drop: Callable[[str], None] = lambda _reason: None,
    ) -> None:
        self._address = address
        self._on_error = on_error
        self._on_drop = on_drop
        self._reserved = frozenset(reserved_ports)
        self._limits = limits
        self._by_port: dict[int, _Server] = {}
        self._port_of: dict[ObjectRef, int] = {}
        self._log = structlog.get_logger("ipvsctl.agent.healthcheck")

    @property
    def listening(self) -> dict[int, ObjectRef]:
        """Ports with a server listening, and the Service each one answers for."""
        return {port: server.ref for port, server in self._by_port.items() if server.listener is not None}

    async def update(self, ref: ObjectRef, *, port: int | None, local_endpoints: int) -> None:
        """Serve ``port`` for a Service (None: it needs no server any more) with its local endpoint count."""
        old_port = self._port_of.get(ref)
        if old_port is not None and old_port != port:
            await self._stop(old_port)
        if port is None:
            return
        if port in self._reserved:
            self._on_error()
            self._log.error("health_check_port_reserved", port=port, service=str(ref))
            return
        server = self._by_port.get(port)
        if server is not None and server.ref != ref:
            self._log.warning("health_check_port_taken", port=port, service=str(ref), owner=str(server.ref))
            return
        if server is None:
            server = self._by_port[port] = _Server(ref, local_endpoints)
            self._port_of[ref] = port
        server.local_endpoints = local_endpoints
        if server.listener is None:
            await self._start(port, server)

    async def retry(self) -> None:
        """Try again to listen on ports that failed before."""
        for port, server in list(self._by_port.items()):
            if server.listener is None:
                await self._start(port, server)

    async def close(self) -> None:
        """Stop every server."""
        for port in list(self._by_port):
            await self._stop(port)

    async def _start(self, port: int, server: _Server) -> None:
        try:
            server.listener = await listen(
                Bind(self._address, port), self._handler(port), limits=self._limits, on_drop=self._on_drop
            )
        except ServerError as error:
            self._on_error()
            self._log.error("health_check_bind_failed", port=port, service=str(server.ref), error=str(error))
            return
        self._log.info("health_check_started", port=port, service=str(server.ref))

    async def _stop(self, port: int) -> None:
        server = self._by_port.pop(port, None)
        if server is None:
            return
        self._port_of.pop(server.ref, None)
        if server.listener is not None:
            await server.listener.close()
            self._log.info("health_check_stopped", port=port, service=str(server.ref))

    def _handler(self, port: int) -> Handler:
        def answer(_path: str) -> Response:
            server = self._by_port.get(port)
            if server is None:
                return Response(503, b"{}", JSON_TYPE)
            body = {
                "service": {"namespace": server.ref.namespace, "name": server.ref.name},
                "localEndpoints": server.local_endpoints,
            }
            return Response(200 if server.local_endpoints > 0 else 503, json.dumps(body).encode(), JSON_TYPE)

        return answer
