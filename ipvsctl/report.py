"""Plans as people and programs read them: grouped text and a stable JSON document (pure).

Text escapes control characters in every line (``ipvsctl.printable``); JSON needs no escaping of its own,
``json.dumps`` writes them as ``\\uXXXX``.

JSON schema ``ipvsctl.plan/v1`` (documented in docs/cli.md)::

    {"schema": "ipvsctl.plan/v1", "node": str, "inSync": bool,
     "changes": [{"op": str, "service": {"namespace", "name"} | null,
                  "virtualService": VS, "realServer": RS | null, "previous": VS | RS | null,
                  "pod": {"namespace", "name"} | null}],
     "summary": {op: count}, "errors": [Problem], "notices": [Problem]}
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ipvsctl.kube.views import ObjectRef
from ipvsctl.model import (
    AddRealServer,
    AddVirtualService,
    DeleteRealServer,
    DeleteVirtualService,
    EditRealServer,
    EditVirtualService,
    Forwarding,
    Operation,
    RealServer,
    ServiceKey,
    VirtualService,
)
from ipvsctl.printable import printable

__all__ = [
    "SCHEMA",
    "Problem",
    "describe_real",
    "describe_settings",
    "op_name",
    "plan_json",
    "plan_text",
    "real_json",
    "ref_json",
    "vs_json",
]

SCHEMA = "ipvsctl.plan/v1"
JSON = dict[str, object]


@dataclass(frozen=True, slots=True)
class Problem:
    """An error or notice about one object, for display."""

    obj: str
    field: str
    message: str

    def __str__(self) -> str:
        """One line for people: ``object: field: message``, control characters escaped."""
        where = ": ".join(part for part in (self.obj, self.field) if part)
        return printable(f"{where}: {self.message}" if where else self.message)

    def to_json(self) -> JSON:
        """JSON form."""
        return {"object": self.obj, "field": self.field, "message": self.message}


@dataclass(frozen=True, slots=True)
class PlanContext:
    """What names the changes: the Service owning each VIP, the Pod behind each real server address."""

    node: str
    owners: Mapping[ServiceKey, ObjectRef] = field(default_factory=dict)
    pods: Mapping[str, ObjectRef] = field(default_factory=dict)
    errors: Sequence[Problem] = ()
    notices: Sequence[Problem] = ()


def op_name(operation: Operation) -> str:
    """Stable name of an operation kind, as used in JSON and metrics."""
    match operation:
        case AddVirtualService():
            return "add-service"
        case EditVirtualService():
            return "edit-service"
        case DeleteVirtualService():
            return "delete-service"
        case AddRealServer():
            return "add-real-server"
        case EditRealServer(drain=True):
            return "drain-real-server"
        case EditRealServer():
            return "edit-real-server"
        case DeleteRealServer():
            return "delete-real-server"


def ref_json(ref: ObjectRef | None) -> JSON | None:
    """``{"namespace", "name"}`` or None."""
    return None if ref is None else {"namespace": ref.namespace, "name": ref.name}


def vs_json(service: VirtualService) -> JSON:
    """JSON form of a virtual service's settings."""
    persistence = service.persistence
    return {
        "protocol": service.key.protocol.value,
        "address": service.key.address,
        "port": service.key.port,
        "scheduler": service.scheduler,
        "persistent": persistence is not None,
        "timeout": persistence.timeout if persistence else 0,
        "netmask": persistence.netmask if persistence else None,
    }


def real_json(real: RealServer) -> JSON:
    """JSON form of a real server."""
    return {
        "address": real.address,
        "port": real.port,
        "weight": real.weight,
        "forwarding": real.forwarding.value,
    }


def _change_json(operation: Operation, context: PlanContext) -> JSON:
    service: VirtualService | None = None
    real: RealServer | None = None
    previous: JSON | None = None
    match operation:
        case AddVirtualService(service=service) | DeleteVirtualService(service=service):
            pass
        case EditVirtualService(service=service, previous=before):
            previous = vs_json(before)
        case AddRealServer(real=real) | DeleteRealServer(real=real):
            pass
        case EditRealServer(real=real, previous=before_real):
            previous = real_json(before_real)
    key = operation.key
    return {
        "op": op_name(operation),
        "service": ref_json(context.owners.get(key)),
        "virtualService": vs_json(service) if service else _key_json(key),
        "realServer": real_json(real) if real else None,
        "previous": previous,
        "pod": ref_json(context.pods.get(real.address)) if real else None,
    }


def _key_json(key: ServiceKey) -> JSON:
    return {"protocol": key.protocol.value, "address": key.address, "port": key.port}


def plan_json(operations: Sequence[Operation], context: PlanContext) -> JSON:
    """The plan as a JSON-ready document (schema ``ipvsctl.plan/v1``)."""
    counts = Counter(op_name(operation) for operation in operations)
    return {
        "schema": SCHEMA,
        "node": context.node,
        "inSync": not operations,
        "changes": [_change_json(operation, context) for operation in operations],
        "summary": dict(sorted(counts.items())),
        "errors": [problem.to_json() for problem in context.errors],
        "notices": [problem.to_json() for problem in context.notices],
    }


def describe_settings(service: VirtualService) -> str:
    """``scheduler rr, persistent 10800s /24`` style summary."""
    text = f"scheduler {service.scheduler}"
    if service.persistence is not None:
        text += f", persistent {service.persistence.timeout}s /{service.persistence.netmask}"
    return text


def describe_real(real: RealServer) -> str:
    """``198.51.100.10:80 masq weight 1``."""
    return f"{real} {real.forwarding.value} weight {real.weight}"


_SYMBOLS = {"add": "+", "edit": "~", "drain": "~", "delete": "-"}


def _lead(name: str) -> str:
    """``  + add    service `` : the start of a change's line, from its operation's name."""
    verb = name.split("-", 1)[0]
    what = "service" if "service" in name else "real"
    return f"  {_SYMBOLS[verb]} {verb:<6} {what:<7} "


# An operation's kind, its verb and the start of its line, by class (a drain is an EditRealServer with drain set):
# one dict lookup per change instead of a match over six classes.
_KINDS: dict[type, tuple[str, str]] = {
    kind: (name.split("-", 1)[0], _lead(name))
    for kind, name in (
        (AddVirtualService, "add-service"),
        (EditVirtualService, "edit-service"),
        (DeleteVirtualService, "delete-service"),
        (AddRealServer, "add-real-server"),
        (EditRealServer, "edit-real-server"),
        (DeleteRealServer, "delete-real-server"),
    )
}
_DRAIN = ("drain", _lead("drain-real-server"))
_FORWARDING = {forwarding: forwarding.value for forwarding in Forwarding}  # Enum.value is a Python call


def _line(operation: Operation, *, key_text: str, lead: str, context: PlanContext) -> str:
    """One change's line; ``key_text`` is ``str`` of its service key (made once per key by the caller)."""
    match operation:
        case AddVirtualService(service=service) | DeleteVirtualService(service=service):
            detail = f"{key_text}  ({describe_settings(service)})"
        case EditVirtualService(service=service, previous=before):
            detail = f"{key_text}  ({describe_settings(before)} -> {describe_settings(service)})"
        case AddRealServer(real=real) | DeleteRealServer(real=real):
            detail = f"{key_text} -> {describe_real(real)}{_pod(real, context)}"
        case EditRealServer(real=real, previous=before_real):
            detail = (
                f"{key_text} -> {real}  ({describe_real(before_real)} -> {describe_real(real)}){_pod(real, context)}"
            )
    return lead + detail


def _pod(real: RealServer, context: PlanContext) -> str:
    pod = context.pods.get(real.address)
    return f"  [pod {pod}]" if pod else ""


def plan_text(operations: Sequence[Operation], context: PlanContext) -> str:
    """One line per change, grouped under the Service (namespace/name) that owns the VIP.

    Names are escaped (``printable``), so a Service or Pod name cannot add or rewrite a line.
    Errors and notices are not part of it: callers print them to stderr.
    """
    groups: dict[str, list[str]] = defaultdict(list)
    # A service key's group and text, found once per key: an apply from empty has four changes per key.
    by_key: dict[ServiceKey, tuple[list[str], str]] = {}
    counts = dict.fromkeys(_SYMBOLS, 0)
    pods = context.pods
    for operation in operations:
        key = operation.key
        found = by_key.get(key)
        if found is None:
            owner = context.owners.get(key)
            title = f"Service {owner}" if owner else "(no Service: stale or unowned by the manifests)"
            found = by_key[key] = (groups[title], str(key))
        kind = type(operation)
        verb, lead = _DRAIN if isinstance(operation, EditRealServer) and operation.drain else _KINDS[kind]
        counts[verb] += 1
        if isinstance(operation, AddRealServer):  # most lines of an apply from empty: _line's, written out
            real = operation.real
            address = real.address
            pod = pods.get(address)
            found[0].append(
                f"{lead}{found[1]} -> {f'[{address}]' if ':' in address else address}:{real.port} "
                f"{_FORWARDING[real.forwarding]} weight {real.weight}{f'  [pod {pod}]' if pod else ''}"
            )
        else:
            found[0].append(_line(operation, key_text=found[1], lead=lead, context=context))
    lines: list[str] = []
    for title in sorted(groups, key=lambda t: (t.startswith("("), t)):
        lines.append(title)
        lines.extend(groups[title])
    if operations:
        parts = ", ".join(f"{counts[verb]} {verb}" for verb in ("add", "edit", "drain", "delete") if counts[verb])
        lines.append(f"node {context.node}: {len(operations)} changes pending ({parts})")
    else:
        lines.append(f"node {context.node}: in sync")
    if all(map(str.isprintable, lines)):  # the usual case, without a Python call per line
        return "\n".join(lines) + "\n"
    return "\n".join(printable(line) for line in lines) + "\n"
