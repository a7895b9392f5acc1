"""The agent's view of the cluster: Services, EndpointSlices and its own Node, kept from list + watch.

Every change answers "which Services does this affect?", so that only those are translated
again. Objects arrive as the API sent them (``ApiObject``: JSON bytes, decoded straight into
typed Structs) or as plain values (tests, benchmarks), and are parsed here (``ipvsctl.kube.parse``);
a malformed one is treated as absent and reported through ``on_invalid``, and the others are
unaffected. So is an object that makes parsing fail in a way nobody foresaw (a bug): anyone who
may create a Service must not be able to stop the agent on every node, so that failure is confined
to the object, logged with its traceback and reported like any malformed object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from ipvsctl.errors import ObjectError
from ipvsctl.kube.parse import ApiObject, RawObject, object_names, parse_endpoint_slice, parse_node, parse_service
from ipvsctl.kube.views import EndpointSliceView, NodeView, ObjectRef, ServiceView

__all__ = ["ClusterCache", "Invalid", "ObjectHandler", "Subject", "all_listed", "raw_subject"]

JSON = Mapping[str, object]
KubeObject = ApiObject | JSON  # what a list or a watch hands over; plain values in tests and benchmarks


@dataclass(frozen=True, slots=True, order=True)
class Subject:
    """The object an Event or a log line is about: kind, namespace/name and uid."""

    kind: str
    ref: ObjectRef
    uid: str = ""
    api_version: str = "v1"


@dataclass(frozen=True, slots=True)
class Invalid:
    """A malformed object: what it is (as far as readable) and why it was refused."""

    subject: Subject
    error: ObjectError


def raw_subject(obj: RawObject, *, kind: str, namespaced: bool = True) -> Subject:
    """The subject of a raw object, read without trusting its shape."""
    name, namespace, uid, api_version = object_names(obj)
    if not isinstance(api_version, str):
        api_version = obj.api_version if isinstance(obj, ApiObject) else "v1"
    return Subject(
        kind=kind,
        ref=ObjectRef(
            (namespace if isinstance(namespace, str) and namespace else "default") if namespaced else "",
            name if isinstance(name, str) else "",
        ),
        uid=uid if isinstance(uid, str) else "",
        api_version=api_version,
    )


MAX_TRIGGERS_PER_SERVICE = 64  # trigger times kept per Service between two syncs (a flood of slice writes)


@dataclass(slots=True)
class ClusterCache:
    """Services by ref, EndpointSlices by ref and by Service, and this node's Node.

    It also keeps, per Service, the ``last-change-trigger-time`` of each slice change not yet programmed (the
    start of the network programming latency the Kubernetes SLI measures): only times after
    ``triggers_since`` (the agent's start, so a first list does not count the cluster's history) and only
    a time not seen before for that slice (a relist of an unchanged slice counts nothing).
    """

    node_name: str
    services: dict[ObjectRef, ServiceView] = field(default_factory=dict)
    slices: dict[ObjectRef, EndpointSliceView] = field(default_factory=dict)
    slices_by_service: dict[ObjectRef, dict[ObjectRef, EndpointSliceView]] = field(default_factory=dict)
    node: NodeView | None = None
    triggers_since: float = float("inf")  # wall-clock POSIX seconds; inf: trigger times are not collected
    triggers: dict[ObjectRef, list[float]] = field(default_factory=dict)

    def take_triggers(self, services: Iterable[ObjectRef]) -> list[float]:
        """The trigger times recorded for these Services, forgotten here (the caller observes them)."""
        taken: list[float] = []
        for ref in services:
            taken += self.triggers.pop(ref, ())
        return taken

    def slices_for(self, service: ObjectRef) -> list[EndpointSliceView]:
        """The Service's EndpointSlices, sorted by name (translation is then deterministic)."""
        members = self.slices_by_service.get(service, {})
        return [members[ref] for ref in sorted(members)]

    # --- Services ----------------------------------------------------------------------------------

    def put_service(self, view: ServiceView) -> set[ObjectRef]:
        """Add or replace a Service; the Services affected (none when nothing changed)."""
        if self.services.get(view.ref) == view:
            return set()
        self.services[view.ref] = view
        return {view.ref}

    def remove_service(self, ref: ObjectRef) -> set[ObjectRef]:
        """Forget a Service."""
        return {ref} if self.services.pop(ref, None) is not None else set()

    # --- EndpointSlices ----------------------------------------------------------------------------

    def put_slice(self, view: EndpointSliceView) -> set[ObjectRef]:
        """Add or replace a slice; the Services affected (both, if it moved to another Service)."""
        old = self.slices.get(view.ref)
        if old == view:
            return set()
        affected = self.remove_slice(view.ref)
        owner = ObjectRef(view.ref.namespace, view.service_name)
        self.slices[view.ref] = view
        self.slices_by_service.setdefault(owner, {})[view.ref] = view
        moment = view.trigger_time
        if moment is not None and moment > self.triggers_since and (old is None or old.trigger_time != moment):
            pending = self.triggers.setdefault(owner, [])
            if len(pending) < MAX_TRIGGERS_PER_SERVICE:
                pending.append(moment)
        return affected | {owner}

    def remove_slice(self, ref: ObjectRef) -> set[ObjectRef]:
        """Forget a slice; the Service it belonged to."""
        old = self.slices.pop(ref, None)
        if old is None:
            return set()
        owner = ObjectRef(ref.namespace, old.service_name)
        members = self.slices_by_service.get(owner, {})
        members.pop(ref, None)
        if not members:
            self.slices_by_service.pop(owner, None)
        return {owner}

    # --- Node --------------------------------------------------------------------------------------

    def put_node(self, view: NodeView) -> set[ObjectRef]:
        """Set this node's Node (others are ignored); every Service when its addresses or zone changed."""
        if view.name != self.node_name or self.node == view:
            return set()
        changed = self.node is None or (self.node.addresses, self.node.zone) != (view.addresses, view.zone)
        self.node = view
        return set(self.services) if changed else set()

    def remove_node(self, name: str) -> set[ObjectRef]:
        """Forget this node's Node (NodePort VIPs go with its addresses)."""
        if self.node is None or name != self.node_name:
            return set()
        self.node = None
        return set(self.services)


class ObjectHandler:
    """Raw objects of one kind (from a list or a watch) → the cache; reports affected Services and refusals.

    ``on_change`` gets the Services to translate again; ``on_invalid`` a malformed object, and
    ``on_valid`` an object that parses (so an earlier refusal can be withdrawn).
    """

    def __init__(
        self,
        *,
        kind: str,
        cache: ClusterCache,
        on_change: Callable[[set[ObjectRef]], None],
        on_invalid: Callable[[Invalid], None],
        on_valid: Callable[[Subject], None],
    ) -> None:
        if kind not in ("Service", "EndpointSlice", "Node"):
            raise ValueError(f"no handler for kind {kind!r}")
        self.kind = kind
        self._cache = cache
        self._on_change = on_change
        self._on_invalid = on_invalid
        self._on_valid = on_valid
        self.listed = False
        self._log = structlog.get_logger("ipvsctl.agent.cache")

    def replace(self, objects: Sequence[KubeObject]) -> None:
        """A complete list: the cache holds exactly these objects of this kind afterwards."""
        affected: set[ObjectRef] = set()
        seen: set[ObjectRef] = set()
        for obj in objects:
            subject = raw_subject(obj, kind=self.kind, namespaced=self.kind != "Node")
            seen.add(subject.ref)
            affected |= self._put(obj, subject)
        for ref in self._present() - seen:
            affected |= self._remove(ref)
        self.listed = True
        self._on_change(affected)

    def upsert(self, obj: KubeObject) -> None:
        """An ADDED or MODIFIED watch event."""
        self._on_change(self._put(obj, raw_subject(obj, kind=self.kind, namespaced=self.kind != "Node")))

    def delete(self, obj: KubeObject) -> None:
        """A DELETED watch event."""
        subject = raw_subject(obj, kind=self.kind, namespaced=self.kind != "Node")
        self._on_valid(subject)  # a deleted object's refusal is moot
        self._on_change(self._remove(subject.ref))

    def _present(self) -> set[ObjectRef]:
        cache = self._cache
        if self.kind == "Service":
            return set(cache.services)
        if self.kind == "EndpointSlice":
            return set(cache.slices)
        return {ObjectRef("", cache.node.name)} if cache.node is not None else set()

    def _put(self, obj: KubeObject, subject: Subject) -> set[ObjectRef]:
        cache = self._cache
        try:
            if self.kind == "Service":
                affected = cache.put_service(parse_service(obj))
            elif self.kind == "EndpointSlice":
                view = parse_endpoint_slice(obj)
                # An FQDN slice is not the proxy's; treat it as absent.
                affected = cache.remove_slice(subject.ref) if view is None else cache.put_slice(view)
            else:
                affected = cache.put_node(parse_node(obj))
        except ObjectError as error:
            self._on_invalid(Invalid(subject, error))
            return self._remove(subject.ref)
        except Exception as error:  # confined to this object: see the module docstring
            self._log.error(
                "object_unreadable", kind=self.kind, object=str(subject.ref), error=repr(error), exc_info=True
            )
            unforeseen = ObjectError(
                f"cannot be read (unexpected {type(error).__name__})", obj=f"{self.kind} {subject.ref}"
            )
            self._on_invalid(Invalid(subject, unforeseen))
            return self._remove(subject.ref)
        self._on_valid(subject)
        return affected

    def _remove(self, ref: ObjectRef) -> set[ObjectRef]:
        cache = self._cache
        if self.kind == "Service":
            return cache.remove_service(ref)
        if self.kind == "EndpointSlice":
            return cache.remove_slice(ref)
        return cache.remove_node(ref.name)


def all_listed(handlers: Iterable[ObjectHandler]) -> bool:
    """True when every handler has seen its first complete list (the gate before the first sync)."""
    return all(handler.listed for handler in handlers)
