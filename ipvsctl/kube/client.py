"""The cluster edge: kubernetes-asyncio calls that return the API's raw JSON, and one-shot cluster reads.

Owns connecting (kubeconfig or in-cluster service account), the resources the proxy reads
(Services, EndpointSlices in discovery.k8s.io/v1 or else v1beta1 as discovery lists them, Nodes),
lists (from the apiserver's watch cache, or paginated consistent reads), watch streams, and writing
core/v1 Events. Responses are read with ``_preload_content=False``:
the generated models are never built (they are slow at scale). A list page or a watch line is
decoded by msgspec only as far as its envelope; each object stays its own JSON bytes (``ApiObject``)
until ``kube/parse.py`` decodes them straight into typed Structs, the same decoder manifests use. No
kubernetes-asyncio or aiohttp exception leaves this module: failures are ``ApiError`` (with
``GoneError`` for 410, meaning "relist") and ``ConflictError``/``NotFoundError`` for writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import aiohttp
import msgspec
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.api_client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

from ipvsctl.errors import IpvsctlError, ObjectError
from ipvsctl.kube.manifests import ManifestSet
from ipvsctl.kube.parse import ApiObject, RawObject, parse_endpoint_slice, parse_node, parse_service

__all__ = [
    "CACHED",
    "CONSISTENT",
    "NODES",
    "PROXY_LABEL_SELECTOR",
    "SERVICES",
    "SLICES_V1",
    "SLICES_V1BETA1",
    "ApiError",
    "ConflictError",
    "GoneError",
    "ListFrom",
    "Listing",
    "NotFoundError",
    "Resource",
    "WatchEvent",
    "connect",
    "create_event",
    "list_all",
    "list_cluster",
    "load_cluster",
    "not_older_than",
    "patch_event",
    "served_slice_resource",
    "slice_resource",
    "watch",
]

JSON = Mapping[str, object]
_V = TypeVar("_V")
LIST_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)
WRITE_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)
PAGE_SIZE = 500
# Slack past the server-side watch timeout before the client gives up on a silent connection.
WATCH_READ_SLACK = 30.0
_CONFLICT, _NOT_FOUND, _GONE = 409, 404, 410
_CONNECTION_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError)


class ApiError(IpvsctlError):
    """A call to the API failed: unreachable (status 0), refused (403) or answered with an error status."""

    def __init__(self, message: str, *, status: int = 0, resource: str = "") -> None:
        self.status = status
        self.resource = resource
        self.message = message
        super().__init__(f"{resource}: {message}" if resource else message)


class GoneError(ApiError):
    """410 Gone: the resourceVersion (or continue token) expired; list again."""


class ConflictError(ApiError):
    """409 AlreadyExists (or a conflict) on a write."""


class NotFoundError(ApiError):
    """404 on a write: the object is gone."""


@dataclass(frozen=True, slots=True)
class Resource:
    """One resource the proxy reads, cluster-wide, and how to list (and watch) it."""

    kind: str
    api_version: str  # "v1", "discovery.k8s.io/v1beta1"
    plural: str

    @property
    def group_version(self) -> tuple[str, str]:
        """("", "v1") for the core group."""
        group, _, version = self.api_version.rpartition("/")
        return group, version

    def __str__(self) -> str:
        return f"{self.plural}.{self.api_version}"

    def call(self, api: ApiClient, **params: Any) -> Awaitable[object]:
        """The kubernetes-asyncio list call of this resource, raw (its response is an aiohttp response)."""
        params["_preload_content"] = False
        group, version = self.group_version
        if group:
            return cast(
                "Awaitable[object]",
                k8s.CustomObjectsApi(api).list_cluster_custom_object(group, version, self.plural, **params),
            )
        core = k8s.CoreV1Api(api)
        method = core.list_service_for_all_namespaces if self.plural == "services" else core.list_node
        return cast("Awaitable[object]", method(**params))


SERVICES = Resource("Service", "v1", "services")
NODES = Resource("Node", "v1", "nodes")
SLICES_V1 = Resource("EndpointSlice", "discovery.k8s.io/v1", "endpointslices")
SLICES_V1BETA1 = Resource("EndpointSlice", "discovery.k8s.io/v1beta1", "endpointslices")

# What kube-proxy's informers ask for (cmd/kube-proxy/app/server.go): no Service or EndpointSlice that names
# another proxy, and no EndpointSlice of a headless Service (the EndpointSlice controller labels those).
PROXY_LABEL_SELECTOR = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless"


@dataclass(frozen=True, slots=True)
class ListFrom:
    """How fresh a list must be, which decides who answers it.

    ``resource_version`` "0": any state the apiserver's watch cache holds (it ignores ``limit`` then: one
    response); a version: from the watch cache once it has caught up with that version (``resourceVersionMatch=
    NotOlderThan``, sent without ``limit``, which would send it to etcd); "": a consistent read from etcd, paginated.
    """

    resource_version: str

    @property
    def paged(self) -> bool:
        """Only a consistent read is paged: the watch cache cannot continue a list, so a version with a ``limit``
        goes to etcd (and version "0" ignores the ``limit``)."""
        return not self.resource_version

    def params(self) -> dict[str, Any]:
        """The list call's query parameters."""
        if self.paged:
            return {"limit": PAGE_SIZE}
        if self.resource_version == "0":
            return {"resource_version": "0"}
        return {"resource_version": self.resource_version, "resource_version_match": "NotOlderThan"}


CACHED = ListFrom("0")
CONSISTENT = ListFrom("")


def not_older_than(resource_version: str) -> ListFrom:
    """A list from the watch cache at ``resource_version`` or later (a relist never goes back in time)."""
    return ListFrom(resource_version) if resource_version else CACHED


@dataclass(frozen=True, slots=True)
class Listing:
    """A complete list: the items (each its JSON bytes, with the resource's kind) and its resourceVersion."""

    items: tuple[ApiObject, ...]
    resource_version: str


class _ListMeta(msgspec.Struct, rename="camel", gc=False):
    resource_version: object = None
    continue_: object = msgspec.field(default=None, name="continue")


class _Page(msgspec.Struct, gc=False):
    """A list response as far as the proxy needs it: the items stay bytes until they are parsed."""

    items: list[msgspec.Raw] | None = None
    metadata: _ListMeta | None = None


class _Version(msgspec.Struct, rename="camel", gc=False):
    resource_version: object = None


class _Versioned(msgspec.Struct, gc=False):
    metadata: _Version | None = None


class _WatchLine(msgspec.Struct, gc=False):
    kind: object = msgspec.field(default=None, name="type")
    raw: msgspec.Raw = msgspec.field(default=msgspec.Raw(b"null"), name="object")  # msgspec: no Raw | None


class _Status(msgspec.Struct, gc=False):
    code: object = None
    message: object = None


_PAGE = msgspec.json.Decoder(_Page)
_VERSIONED = msgspec.json.Decoder(_Versioned)
_WATCH_LINE = msgspec.json.Decoder(_WatchLine)
_STATUS = msgspec.json.Decoder(_Status)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One watch event: ADDED, MODIFIED, DELETED or BOOKMARK, and the object (its JSON bytes)."""

    type: str
    object: ApiObject

    @property
    def resource_version(self) -> str:
        """``metadata.resourceVersion`` of the object ('' when absent or not a string)."""
        try:
            metadata = _VERSIONED.decode(self.object.data).metadata
        except msgspec.MsgspecError:
            return ""
        version = metadata.resource_version if metadata is not None else None
        return version if isinstance(version, str) else ""


@contextlib.asynccontextmanager
async def connect(kubeconfig: str | None) -> AsyncIterator[ApiClient]:
    """An API client from a kubeconfig file, or from the pod's service account when ``kubeconfig`` is None."""
    try:
        if kubeconfig is None:
            configuration = k8s.Configuration()
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            api = ApiClient(configuration=configuration)
        else:
            api = await k8s_config.new_client_from_config(config_file=kubeconfig)
    except (ConfigException, OSError) as error:
        where = kubeconfig or "in-cluster service account"
        raise ApiError(f"cannot load API configuration: {error}", resource=where) from None
    async with api:
        yield api


async def _request(
    call: Callable[[], Awaitable[object]], *, resource: str, ok: Sequence[int] = (200,)
) -> aiohttp.ClientResponse:
    """Send a raw request; an error status becomes the matching ApiError (the body's message included)."""
    try:
        response = cast("aiohttp.ClientResponse", await call())
    except ApiException as error:  # raised by the client's own checks, before or without a response
        raise ApiError(str(error.reason or error), status=error.status or 0, resource=resource) from None
    except _CONNECTION_ERRORS as error:
        raise ApiError(f"unreachable: {error!r}", resource=resource) from None
    if response.status in ok:
        return response
    async with response:
        try:
            body = await response.read()
        except _CONNECTION_ERRORS:
            body = b""
    raise _status_error(response.status, _message(body) or response.reason or "", resource=resource)


def _status_error(status: int, message: str, *, resource: str) -> ApiError:
    kind = {_GONE: GoneError, _CONFLICT: ConflictError, _NOT_FOUND: NotFoundError}.get(status, ApiError)
    return kind(f"HTTP {status}: {message}", status=status, resource=resource)


def _message(body: bytes) -> str:
    try:
        status = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")[:200]
    return str(status.get("message", "")) if isinstance(status, Mapping) else ""


async def _read_page(response: aiohttp.ClientResponse, *, resource: str) -> _Page:
    async with response:
        try:
            body = await response.read()
        except _CONNECTION_ERRORS as error:
            raise ApiError(f"unreachable: {error!r}", resource=resource) from None
    try:
        return _PAGE.decode(body)
    except msgspec.ValidationError as error:
        raise ApiError(f"list response is not a list: {error}", resource=resource) from None
    except msgspec.DecodeError:
        raise ApiError("list response is not JSON", resource=resource) from None


async def list_all(
    api: ApiClient,
    resource: Resource,
    *,
    field_selector: str | None = None,
    label_selector: str | None = None,
    source: ListFrom = CONSISTENT,
) -> Listing:
    """Every object of ``resource`` and the list's resourceVersion; GoneError if a page (or the version) expired.

    ``source`` decides who answers (``ListFrom``); the selectors are applied by the server.
    """
    items: list[ApiObject] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {**source.params(), "_request_timeout": LIST_TIMEOUT}
        if token:
            params["_continue"] = token
        if field_selector:
            params["field_selector"] = field_selector
        if label_selector:
            params["label_selector"] = label_selector
        page = await _read_page(
            await _request(functools.partial(resource.call, api, **params), resource=str(resource)),
            resource=str(resource),
        )
        # List items carry neither kind nor apiVersion: the resource's stand in for them.
        items.extend(ApiObject(bytes(item), resource.kind, resource.api_version) for item in page.items or ())
        metadata = page.metadata or _ListMeta()
        token = metadata.continue_ if isinstance(metadata.continue_, str) else None
        if not token:
            version = metadata.resource_version
            return Listing(items=tuple(items), resource_version=version if isinstance(version, str) else "")


class _GroupVersion(msgspec.Struct, gc=False):
    version: object = None


class _Group(msgspec.Struct, gc=False):
    versions: list[_GroupVersion] | None = None


_GROUP = msgspec.json.Decoder(_Group)
_SLICE_GROUP = "discovery.k8s.io"


def served_slice_resource(versions: Sequence[str]) -> Resource | None:
    """The EndpointSlice resource to read, given the versions discovery lists: v1, else v1beta1, else None."""
    for candidate in (SLICES_V1, SLICES_V1BETA1):
        if candidate.group_version[1] in versions:
            return candidate
    return None


async def slice_resource(api: ApiClient) -> Resource:
    """discovery.k8s.io/v1 EndpointSlices when discovery lists them, else v1beta1 (Kubernetes < 1.21).

    One GET of /apis/discovery.k8s.io (served from memory, open to every authenticated user): no list.
    """
    discovery: Any = k8s.DiscoveryApi(api)
    try:
        response = await _request(
            lambda: discovery.get_api_group(_preload_content=False, _request_timeout=LIST_TIMEOUT),
            resource=_SLICE_GROUP,
        )
    except NotFoundError:
        raise ApiError("the server serves no discovery.k8s.io API group", resource=_SLICE_GROUP) from None
    async with response:
        try:
            body = await response.read()
        except _CONNECTION_ERRORS as error:
            raise ApiError(f"unreachable: {error!r}", resource=_SLICE_GROUP) from None
    try:
        group = _GROUP.decode(body)
    except msgspec.MsgspecError:
        raise ApiError("discovery answered something that is not an API group", resource=_SLICE_GROUP) from None
    served = [entry.version for entry in group.versions or () if isinstance(entry.version, str)]
    found = served_slice_resource(served)
    if found is None:
        raise ApiError(f"the server serves neither v1 nor v1beta1 (it lists {served})", resource=_SLICE_GROUP)
    return found


async def watch(
    api: ApiClient,
    resource: Resource,
    *,
    resource_version: str,
    timeout_seconds: int,
    field_selector: str | None = None,
    label_selector: str | None = None,
    on_open: Callable[[], None] = lambda: None,
) -> AsyncIterator[WatchEvent]:
    """Watch events after ``resource_version`` until the server ends the stream (after ``timeout_seconds``).

    Bookmarks are asked for; ``on_open`` is called once the server has accepted the watch. An ERROR
    event becomes GoneError (410) or ApiError; a dropped or silent connection becomes ApiError (status 0).
    """
    params: dict[str, Any] = {
        "watch": True,
        "allow_watch_bookmarks": True,
        "resource_version": resource_version,
        "timeout_seconds": timeout_seconds,
        "_request_timeout": aiohttp.ClientTimeout(sock_connect=10, sock_read=timeout_seconds + WATCH_READ_SLACK),
    }
    if field_selector:
        params["field_selector"] = field_selector
    if label_selector:
        params["label_selector"] = label_selector
    name = str(resource)
    response = await _request(lambda: resource.call(api, **params), resource=name)
    on_open()
    async with response:
        while True:
            try:
                line = await response.content.readline()
            except _CONNECTION_ERRORS as error:
                raise ApiError(f"watch dropped: {error!r}", resource=name) from None
            if not line:
                return
            if line.strip():
                yield _watch_event(line, resource=resource)


def _watch_event(line: bytes, *, resource: Resource) -> WatchEvent:
    try:
        event = _WATCH_LINE.decode(line)
    except msgspec.MsgspecError:
        raise ApiError("watch sent a line that is not a JSON object", resource=str(resource)) from None
    kind, obj = event.kind, event.raw
    if not isinstance(kind, str) or bytes(obj).lstrip()[:1] != b"{":
        raise ApiError("watch sent an event without type or object", resource=str(resource))
    if kind == "ERROR":
        try:
            status = _STATUS.decode(obj)
        except msgspec.MsgspecError:
            status = _Status()
        code = status.code if isinstance(status.code, int) and not isinstance(status.code, bool) else 0
        message = status.message if isinstance(status.message, str) else ""
        raise _status_error(code, message, resource=str(resource))
    return WatchEvent(type=kind, object=ApiObject(bytes(obj), resource.kind, resource.api_version))


# --- Events ----------------------------------------------------------------------------------------


async def create_event(api: ApiClient, event: JSON) -> None:
    """Create a core/v1 Event (raw JSON body); ConflictError when its name exists."""
    namespace = str(cast("Mapping[str, object]", event["metadata"])["namespace"])
    core: Any = k8s.CoreV1Api(api)  # typed for generated models; raw JSON bodies serialise the same
    response = await _request(
        lambda: core.create_namespaced_event(namespace, event, _preload_content=False, _request_timeout=WRITE_TIMEOUT),
        resource="events",
        ok=(200, 201),
    )
    response.release()


async def patch_event(api: ApiClient, *, namespace: str, name: str, changes: JSON) -> None:
    """Merge-patch an Event (count, lastTimestamp, message); NotFoundError when it expired."""
    core: Any = k8s.CoreV1Api(api)
    response = await _request(
        lambda: core.patch_namespaced_event(
            name,
            namespace,
            changes,
            _content_type="application/merge-patch+json",
            _preload_content=False,
            _request_timeout=WRITE_TIMEOUT,
        ),
        resource="events",
    )
    response.release()


# --- one-shot reads --------------------------------------------------------------------------------


async def load_cluster(kubeconfig: str | None, *, node_name: str | None = None) -> ManifestSet:
    """``list_cluster`` through a client of its own: what ``diff``, ``show`` and ``affinity --kubeconfig`` read.

    ``kubeconfig`` None means the pod's service account. Raises ApiError when the API cannot be read.
    """
    async with connect(kubeconfig) as api:
        return await list_cluster(api, node_name=node_name)


async def list_cluster(api: ApiClient, *, node_name: str | None = None) -> ManifestSet:
    """Services, EndpointSlices and Nodes (only ``node_name``'s, when given) as views, listed once.

    The same shape ``load_manifests`` returns: malformed objects are in ``errors``, the rest load.
    """
    slices = await slice_resource(api)
    selector = f"metadata.name={node_name}" if node_name else None
    listings = await asyncio.gather(
        list_all(api, SERVICES), list_all(api, slices), list_all(api, NODES, field_selector=selector)
    )
    errors: list[ObjectError] = []
    return ManifestSet(
        services=tuple(_parsed(listings[0].items, parse_service, errors)),
        slices=tuple(_parsed(listings[1].items, parse_endpoint_slice, errors)),
        nodes=tuple(_parsed(listings[2].items, parse_node, errors)),
        errors=tuple(errors),
    )


def _parsed(items: Sequence[ApiObject], parse: Callable[[RawObject], _V | None], errors: list[ObjectError]) -> list[_V]:
    views: list[_V] = []
    for item in items:
        try:
            view = parse(item)
        except ObjectError as error:
            errors.append(ObjectError(error.message, source="cluster", obj=error.obj, field=error.field))
            continue
        if view is not None:
            views.append(view)
    return views
