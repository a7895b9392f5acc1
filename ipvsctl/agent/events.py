"""Kubernetes Warning Events about the objects the agent refuses or only partly honours, deduplicated.

``EventRecorder.happened`` writes one Event for something that happened once (a drain cut short): it is
not a state, so nothing holds it and it is never refreshed.

``EventRecorder.set`` is told, per object and topic, the problems that hold now. A problem is
reported (one Event + one log line) when it appears; while it persists nothing is sent, except
a refresh (count + 1, new lastTimestamp) every ``refresh_after`` seconds so that it outlives the
apiserver's Event TTL; when it reappears later the same Event's count goes up. Event names are
derived from node, object, reason and message, so a restarted agent patches its earlier Event
instead of adding one. Writes run in their own task and never hold up a sync; a failed write is
retried with backoff while the problem still holds.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import structlog
from kubernetes_asyncio.client.api_client import ApiClient

from ipvsctl.agent.cache import Subject
from ipvsctl.agent.clock import Clock, backoff
from ipvsctl.kube.client import ApiError, ConflictError, NotFoundError, create_event, patch_event

__all__ = [
    "INVALID_OBJECT",
    "REASON_LOG_EVENTS",
    "ApiEventSink",
    "EventRecorder",
    "EventSink",
    "Problem",
]

COMPONENT = "ipvsctl"
INVALID_OBJECT = "IpvsctlInvalidObject"
# Each reason's log event name (short, constant).
REASON_LOG_EVENTS: Mapping[str, str] = {
    "IpvsctlRejected": "service_rejected",
    "IpvsctlExternalIPIgnored": "external_ip_ignored",
    "IpvsctlLoadBalancerIPIgnored": "load_balancer_ip_ignored",
    "IpvsctlAddressRefused": "address_refused",
    "IpvsctlVIPTaken": "vip_taken",
    "IpvsctlSourceRangeInvalid": "source_range_invalid",
    "IpvsctlUnknownAnnotation": "annotation_unknown",
    "IpvsctlNotice": "service_notice",
    INVALID_OBJECT: "object_invalid",
    "IpvsctlDrainTimedOut": "drain_timed_out",
}
_NAME_LIMIT = 200  # of the object-name prefix; Event names may have 253 characters

JSON = Mapping[str, object]
Problem = tuple[str, str]  # (reason, message)
_Key = tuple[Subject, str, str]  # (subject, reason, message)


class EventSink(Protocol):
    """Where Events go: the API (``ipvsctl.kube.client``) or a fake that keeps them."""

    async def create(self, event: JSON) -> None:
        """Create an Event; ConflictError when the name exists."""
        ...

    async def patch(self, *, namespace: str, name: str, changes: JSON) -> None:
        """Merge-patch an Event; NotFoundError when it is gone (expired)."""
        ...


@dataclass(slots=True)
class _Sent:
    name: str
    count: int
    last: float  # clock.now() of the last write


class EventRecorder:
    """Current problems per (object, topic) → deduplicated Events, written by ``run``."""

    def __init__(
        self,
        *,
        sink: EventSink,
        node_name: str,
        clock: Clock,
        refresh_after: float = 1800.0,
        on_error: Callable[[], None] = lambda: None,
    ) -> None:
        self._sink = sink
        self._node = node_name
        self._clock = clock
        self._refresh_after = refresh_after
        self._on_error = on_error
        self._active: dict[tuple[Subject, str], frozenset[Problem]] = {}
        self._sent: dict[_Key, _Sent] = {}
        self._pending: dict[_Key, None] = {}  # an ordered set
        self._happened: set[_Key] = set()  # one-off Events not yet written (see ``happened``)
        self._wake = asyncio.Event()
        self._log = structlog.get_logger("ipvsctl.agent.events")

    @property
    def pending(self) -> int:
        """Problems waiting to be written."""
        return len(self._pending)

    def set(self, subject: Subject, *, topic: str, problems: Iterable[Problem]) -> None:
        """The problems ``topic`` sees on ``subject`` now; new ones are logged and queued for an Event."""
        new = frozenset(problems)
        old = self._active.pop((subject, topic), frozenset())
        if new:
            self._active[subject, topic] = new
        for reason, message in sorted(new - old):
            self._log.warning(
                REASON_LOG_EVENTS.get(reason, "object_problem"),
                kind=subject.kind,
                object=str(subject.ref),
                reason=reason,
                detail=message,
            )
            self._queue((subject, reason, message))

    def happened(self, subject: Subject, *, reason: str, message: str) -> None:
        """Something that happened to ``subject`` once: logged and written as one Event (retried until written)."""
        self._log.warning(
            REASON_LOG_EVENTS.get(reason, "object_problem"),
            kind=subject.kind,
            object=str(subject.ref),
            reason=reason,
            detail=message,
        )
        key = (subject, reason, message)
        self._happened.add(key)
        self._queue(key)

    def forget(self, subject: Subject) -> None:
        """Drop everything about an object that is gone (its history too, so memory stays bounded)."""
        self._happened = {key for key in self._happened if key[0] != subject}
        for key in [key for key in self._active if key[0] == subject]:
            del self._active[key]
        for sent in [key for key in self._sent if key[0] == subject]:
            del self._sent[sent]

    def refresh(self) -> None:
        """Queue a refresh of problems that have held for ``refresh_after`` since their last write."""
        now = self._clock.now()
        for key in self._active_keys():
            sent = self._sent.get(key)
            if sent is not None and now - sent.last >= self._refresh_after:
                self._queue(key)

    async def run(self) -> None:
        """Write queued Events forever, one at a time; retry failures with backoff."""
        delays = backoff(first=1.0, cap=60.0)
        while True:
            await self._wake.wait()
            while self._pending:
                key = next(iter(self._pending))
                del self._pending[key]
                if key not in self._happened and key not in set(self._active_keys()):
                    continue  # resolved (or its object deleted) before it could be written
                try:
                    await self._write(key)
                except ApiError as error:
                    self._on_error()
                    self._log.error("event_write_failed", object=str(key[0].ref), reason=key[1], error=str(error))
                    self._pending[key] = None
                    await self._clock.sleep(next(delays))
                else:
                    self._happened.discard(key)
                    delays = backoff(first=1.0, cap=60.0)
            self._wake.clear()

    def _active_keys(self) -> Iterator[_Key]:
        for (subject, _topic), problems in self._active.items():
            for reason, message in problems:
                yield (subject, reason, message)

    def _queue(self, key: _Key) -> None:
        self._pending[key] = None
        self._wake.set()

    async def _write(self, key: _Key) -> None:
        subject = key[0]
        now = self._clock.now()
        stamp = self._clock.wall().strftime("%Y-%m-%dT%H:%M:%SZ")
        sent = self._sent.get(key)
        namespace = subject.ref.namespace or "default"
        if sent is not None:
            count = sent.count + 1
            try:
                await self._sink.patch(
                    namespace=namespace, name=sent.name, changes={"count": count, "lastTimestamp": stamp}
                )
            except NotFoundError:  # expired (Event TTL): start it again
                await self._sink.create(self._event(key, name=sent.name, count=count, stamp=stamp))
            self._sent[key] = _Sent(sent.name, count, now)
            return
        name = self.event_name(key)
        try:
            await self._sink.create(self._event(key, name=name, count=1, stamp=stamp))
        except ConflictError:  # written by this node's agent before a restart
            await self._sink.patch(namespace=namespace, name=name, changes={"lastTimestamp": stamp})
        self._sent[key] = _Sent(name, 1, now)

    def event_name(self, key: _Key) -> str:
        """The Event's name: the object's name and a digest of node, object, reason and message."""
        subject, reason, message = key
        identity = "\n".join((self._node, subject.kind, str(subject.ref), subject.uid, reason, message))
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
        return f"{subject.ref.name[:_NAME_LIMIT]}.{digest}"

    def _event(self, key: _Key, *, name: str, count: int, stamp: str) -> JSON:
        subject, reason, message = key
        involved: dict[str, object] = {
            "kind": subject.kind,
            "apiVersion": subject.api_version,
            "name": subject.ref.name,
        }
        if subject.ref.namespace:
            involved["namespace"] = subject.ref.namespace
        if subject.uid:
            involved["uid"] = subject.uid
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": subject.ref.namespace or "default"},
            "involvedObject": involved,
            "type": "Warning",
            "reason": reason,
            "message": f"{message} (node {self._node})",
            "count": count,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": COMPONENT, "host": self._node},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._node,
        }


class ApiEventSink:
    """Events written to the apiserver (core/v1, needs create and patch on events)."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    async def create(self, event: JSON) -> None:
        """Create an Event; ConflictError when the name exists."""
        await create_event(self._api, event)

    async def patch(self, *, namespace: str, name: str, changes: JSON) -> None:
        """Merge-patch an Event; NotFoundError when it is gone."""
        await patch_event(self._api, namespace=namespace, name=name, changes=changes)
