"""List, then watch, one resource for ever: bookmarks, 410 Gone → relist, dropped connections → reconnect.

A watcher feeds an ``ObjectHandler`` (which updates the cache) with each object as the API sent it
(``ApiObject``: its JSON bytes, decoded only by ``kube/parse.py``). It lists (page by page) when it
has no resourceVersion, then watches from there with bookmarks; a watch that ends normally (the
server's timeout) is resumed from the last resourceVersion at once. An expired resourceVersion
(410) means a relist; any other failure a retry after the next backoff delay, the connection
marked down meanwhile (the agent reports not ready and keeps the kernel table as it is).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator

import structlog
from kubernetes_asyncio.client.api_client import ApiClient

from ipvsctl.agent.cache import ObjectHandler
from ipvsctl.agent.clock import Clock, backoff
from ipvsctl.agent.metrics import AgentMetrics
from ipvsctl.kube.client import ApiError, GoneError, Resource, list_all, watch

__all__ = ["Watcher"]

WATCH_TIMEOUT = 300  # seconds; spread by up to 20% so a fleet's watches do not end together


class Watcher:
    """One resource's list + watch loop."""

    def __init__(
        self,
        *,
        name: str,
        api: ApiClient,
        resource: Callable[[], Awaitable[Resource]],
        handler: ObjectHandler,
        clock: Clock,
        metrics: AgentMetrics,
        on_connection: Callable[[str, bool], None],
        field_selector: str | None = None,
        delays: Callable[[], Iterator[float]] = backoff,
        timeout_seconds: int | None = None,
    ) -> None:
        self.name = name
        self._api = api
        self._resource = resource
        self._handler = handler
        self._clock = clock
        self._metrics = metrics
        self._on_connection = on_connection
        self._selector = field_selector
        self._delays = delays
        self._timeout = timeout_seconds or int(WATCH_TIMEOUT * random.uniform(1.0, 1.2))  # noqa: S311 (spread only)
        self.resource_version = ""
        self._backoff = delays()
        self._log = structlog.get_logger("ipvsctl.agent.watch").bind(resource=name)

    async def run(self) -> None:
        """List and watch until cancelled; never raises ApiError."""
        self._backoff = self._delays()
        resource: Resource | None = None
        while True:
            try:
                if resource is None or not self.resource_version:
                    resource = await self._resource()
                    await self._list(resource)
                    self._connected()
                events = await self._watch(resource)
                if events == 0:  # a stream that ends at once, again and again, must not spin
                    await self._clock.sleep(next(self._backoff))
                self._metrics.watch_restarts.labels(resource=self.name, reason="closed").inc()
            except GoneError as error:
                self._metrics.watch_restarts.labels(resource=self.name, reason="expired").inc()
                self._log.info("watch_expired", resource_version=self.resource_version, error=error.message)
                self.resource_version = ""
            except ApiError as error:
                self._on_connection(self.name, False)
                self._metrics.error("watch")
                self._metrics.watch_restarts.labels(resource=self.name, reason="error").inc()
                delay = next(self._backoff)
                self._log.warning("watch_failed", status=error.status, error=error.message, retry_in_s=round(delay, 3))
                await self._clock.sleep(delay)

    def _connected(self) -> None:
        """The server answered: report the connection up and start the backoff over."""
        self._on_connection(self.name, True)
        self._backoff = self._delays()

    async def _list(self, resource: Resource) -> None:
        listing = await list_all(self._api, resource, field_selector=self._selector)
        self._handler.replace(listing.items)
        self.resource_version = listing.resource_version
        self._log.info(
            "list_done",
            api_version=resource.api_version,
            objects=len(listing.items),
            resource_version=self.resource_version,
        )

    async def _watch(self, resource: Resource) -> int:
        """Follow one watch stream to its end; the number of events it carried."""
        count = 0
        stream = watch(
            self._api,
            resource,
            resource_version=self.resource_version,
            timeout_seconds=self._timeout,
            field_selector=self._selector,
            on_open=self._connected,
        )
        async for event in stream:
            count += 1
            if event.type in ("ADDED", "MODIFIED"):
                self._handler.upsert(event.object)
            elif event.type == "DELETED":
                self._handler.delete(event.object)
            elif event.type != "BOOKMARK":
                self._log.warning("watch_event_unknown", type=event.type)
                continue
            self.resource_version = event.resource_version or self.resource_version
        return count
