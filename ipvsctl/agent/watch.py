"""List, then watch, one resource for ever: bookmarks, 410 Gone → relist, dropped connections → reconnect.

A watcher feeds an ``ObjectHandler`` (which updates the cache) with each object as the API sent it
(``ApiObject``: its JSON bytes, decoded only by ``kube/parse.py``). It lists when it has no
resourceVersion, then watches from there with bookmarks; a watch that ends normally (the server's
timeout) is resumed from the last resourceVersion at once. Never a periodic relist.

Lists are answered by the apiserver's watch cache, not etcd: the first with ``resourceVersion=0``,
a relist with the last version seen and ``resourceVersionMatch=NotOlderThan`` (never back in time);
only if that version is gone from storage too (410 on the list: a server without a watch cache) is
the next list a consistent, paginated read. Selectors are applied by the server.

An expired resourceVersion (410) means a relist after the next relist delay (``relist_backoff``:
1 s doubling to 30 s, each drawn from [0, 2 x] so a fleet of agents relisting after an apiserver
restart spreads out); any other failure a new watch from the last resourceVersion after the next
backoff delay, the connection marked down meanwhile (the agent reports not ready and keeps the
kernel table as it is).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterator

import structlog
from kubernetes_asyncio.client.api_client import ApiClient

from ipvsctl.agent.cache import ObjectHandler
from ipvsctl.agent.clock import Clock, backoff
from ipvsctl.agent.metrics import AgentMetrics
from ipvsctl.kube.client import CONSISTENT, ApiError, GoneError, Resource, list_all, not_older_than, watch

__all__ = ["RELIST_RESET_AFTER", "Watcher", "relist_backoff"]

WATCH_TIMEOUT = 300  # seconds; spread by up to 20% so a fleet's watches do not end together
RELIST_RESET_AFTER = 120.0  # seconds of watching without a 410 after which relist delays start over


def relist_backoff(*, rng: random.Random | None = None) -> Iterator[float]:
    """Delays before relists: 1 s doubling to 30 s, each drawn from [0, 2 x] (full jitter, mean x)."""
    return backoff(first=1.0, factor=2.0, cap=30.0, jitter=1.0, rng=rng)


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
        label_selector: str | None = None,
        delays: Callable[[], Iterator[float]] = backoff,
        relist_delays: Callable[[], Iterator[float]] = relist_backoff,
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
        self._labels = label_selector
        self._delays = delays
        self._relist_delays = relist_delays
        self._timeout = timeout_seconds or int(WATCH_TIMEOUT * random.uniform(1.0, 1.2))  # noqa: S311 (spread only)
        self.resource_version = ""  # where the next watch starts; "" means list first
        self.last_resource_version = ""  # the newest version seen, kept across a 410: a relist is not older
        # The resourceVersion the latest lists asked for ("0", a version, or "" for etcd): logs, tests, benches.
        self.lists: deque[str] = deque(maxlen=16)
        self._consistent_next = False
        self._backoff = delays()
        self._relist_backoff = relist_delays()
        self._calm_since = clock.now()
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
                self.resource_version = ""
                await self.pause_before_relist(error)
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

    async def pause_before_relist(self, error: GoneError) -> None:
        """Wait the next jittered relist delay (starting over after a calm spell) so a fleet spreads its relists."""
        now = self._clock.now()
        if now - self._calm_since >= RELIST_RESET_AFTER:
            self._relist_backoff = self._relist_delays()
        self._calm_since = now
        delay = next(self._relist_backoff)
        self._log.info(
            "watch_expired", last_resource_version=self.last_resource_version, error=error.message, relist_in_s=delay
        )
        await self._clock.sleep(delay)

    async def _list(self, resource: Resource) -> None:
        source = CONSISTENT if self._consistent_next else not_older_than(self.last_resource_version)
        self.lists.append(source.resource_version)
        try:
            listing = await list_all(
                self._api, resource, field_selector=self._selector, label_selector=self._labels, source=source
            )
        except GoneError:
            self._consistent_next = True  # the version is gone from storage too: read etcd next time
            raise
        self._consistent_next = False
        self._handler.replace(listing.items)
        self.resource_version = self.last_resource_version = listing.resource_version
        self._log.info(
            "list_done",
            api_version=resource.api_version,
            objects=len(listing.items),
            resource_version=self.resource_version,
            asked_resource_version=source.resource_version,
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
            label_selector=self._labels,
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
            self.last_resource_version = self.resource_version
        return count
