"""Where a client is pinned and why: persistence templates joined with the table and Kubernetes names (pure).

A persistent virtual service (``ipvsadm -p TIMEOUT -M MASK``) sends every client of one network to the same
real server while a template lives. ``ip_vs_sched_persist`` (``net/netfilter/ipvs/ip_vs_core.c``) keys
a template by the client address masked with the service's netmask (client port 0) and by the VIP:

- a TCP/UDP/SCTP service: the VIP and the service port, with the real server's port;
- a service on port 21 (``FTPPORT``) and a port-zero service: the VIP with port 0, real server port 0;
- a fwmark service: protocol ``IP``, the mark in place of the VIP (first 32 bits), ports 0.

A template is refreshed to the service's timeout whenever it pins a new connection, and outlives its
countdown while connections it controls remain. A client is covered by a template when its address masked
with the service's *current* prefix equals the template's client, which is how the kernel looks it up.
Only templates of services that are persistent in the given table are pins: templates of a deleted or
no longer persistent service pin nobody new.

JSON schema ``ipvsctl.affinity/v1``::

    {"schema": "ipvsctl.affinity/v1",
     "pins": [{"service": {"namespace", "name"} | null,
               "virtualService": {"protocol": "tcp"|"udp"|"sctp"|"fwmark", "address": str, "port": int},
               "clientNetwork": "192.0.2.0/24", "realServer": {"address": str, "port": int},
               "pod": {"namespace", "name"} | null, "expiresSeconds": int, "timeoutSeconds": int}]}

For a fwmark service ``address`` is ``0.0.0.0`` or ``::`` and ``port`` is the mark (as in ``ServiceKey``).
Pins are sorted by virtual service, client network, then real server.

With a client named, the document also has ``"clusterChoices"``: for each cluster-scope virtual service
(``ipvsctl.io/affinity-scope: cluster``) of the client's family, the real server the Maglev table picks for a
new client, computed as the kernel does (``ipvsctl.maglev``) and the same on every node that holds the same
endpoints: ``[{"service", "virtualService", "client", "realServer": {...} | null, "pod"}]``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from ipvsctl.affinity_scope import is_cluster_scope, lookup_table
from ipvsctl.conntable import Connection
from ipvsctl.errors import UsageError
from ipvsctl.kube.views import ObjectRef
from ipvsctl.model import RealServerKey, ServiceKey, Table, VirtualService, canonical_ip, family_of, packed_address
from ipvsctl.numbers import parse_decimal
from ipvsctl.printable import printable
from ipvsctl.report import ref_json

__all__ = [
    "SCHEMA",
    "ClusterChoice",
    "Pin",
    "PinFilter",
    "choices_json",
    "choices_text",
    "cluster_choices",
    "find_pins",
    "parse_pin_filter",
    "pins_json",
    "pins_text",
]

SCHEMA = "ipvsctl.affinity/v1"
FTP_PORT = 21  # FTPPORT in ip_vs_core.c: its templates carry port 0
JSON = dict[str, object]


@dataclass(frozen=True, slots=True)
class Pin:
    """A client network pinned to one real server of a persistent virtual service."""

    virtual_service: ServiceKey
    service: ObjectRef | None
    client: str  # the template's client: already masked by the kernel
    netmask: int  # prefix length of the service's persistence
    real_server: RealServerKey
    pod: ObjectRef | None
    expires: int  # seconds left on the template
    timeout: int  # the service's persistence timeout, which each new connection restarts

    @property
    def client_network(self) -> str:
        """``192.0.2.0/24`` or ``2001:db8:1::/64``."""
        return f"{self.client}/{self.netmask}"

    def covers(self, client: str) -> bool:
        """True when the kernel would look up this template for a packet from ``client`` (canonical)."""
        if family_of(client) != family_of(self.client):
            return False
        network = ipaddress.ip_network(f"{client}/{self.netmask}", strict=False)
        return str(network.network_address) == self.client


@dataclass(frozen=True, slots=True)
class PinFilter:
    """Which pins to show; every field set must match. ``vip_port`` None matches any port of ``vip``."""

    client: str | None = None
    vip: str | None = None
    vip_port: int | None = None
    service: ObjectRef | None = None

    def matches(self, pin: Pin) -> bool:
        """True when the pin passes every filter that is set."""
        if self.client is not None and not pin.covers(self.client):
            return False
        return self.selects(pin.virtual_service, pin.service)

    def selects(self, key: ServiceKey, service: ObjectRef | None) -> bool:
        """True when a virtual service (of that Service) passes the ``vip`` and ``service`` filters."""
        if self.vip is not None and (key.is_fwmark or key.address != self.vip):
            return False
        if self.vip_port is not None and key.port != self.vip_port:
            return False
        return self.service is None or service == self.service


def parse_pin_filter(*, client: str | None = None, vip: str | None = None, service: str | None = None) -> PinFilter:
    """``--client IP``, ``--vip IP[:PORT]`` (IPv6 as ``[IP]:PORT``) and ``--service NS/NAME`` → a PinFilter."""
    vip_address, vip_port = (None, None) if vip is None else _parse_vip(vip)
    return PinFilter(
        client=None if client is None else _parse_ip(client, flag="--client"),
        vip=vip_address,
        vip_port=vip_port,
        service=None if service is None else _parse_ref(service),
    )


def _parse_ip(text: str, *, flag: str) -> str:
    try:
        return canonical_ip(text)
    except ValueError:
        raise UsageError(f"{text!r} is not an IP address", flag=flag) from None


def _parse_vip(text: str) -> tuple[str, int | None]:
    host, port_text = text, ""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise UsageError(f"{text!r} is not IP, IP:PORT or [IPv6]:PORT", flag="--vip")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    address = _parse_ip(host, flag="--vip")
    if not port_text:
        return address, None
    port = parse_decimal(port_text, max_digits=5)
    if port is None or port > 65535:
        raise UsageError(f"{port_text!r} is not a port in 0..65535", flag="--vip")
    return address, port


def _parse_ref(text: str) -> ObjectRef:
    namespace, slash, name = text.partition("/")
    if not slash or not namespace or not name or "/" in name:
        raise UsageError(f"{text!r} is not NAMESPACE/NAME", flag="--service")
    return ObjectRef(namespace, name)


def find_pins(
    connections: Iterable[Connection],
    *,
    table: Table,
    owners: Mapping[ServiceKey, ObjectRef] | None = None,
    pods: Mapping[str, ObjectRef] | None = None,
    where: PinFilter | None = None,
) -> list[Pin]:
    """The pins of the templates among ``connections``, named by ``owners`` and ``pods``, filtered by ``where``."""
    owners = owners or {}
    pods = pods or {}
    where = where or PinFilter()
    pins: list[Pin] = []
    for connection in connections:
        if not connection.is_template:
            continue
        service = _service_of(connection, table)
        if service is None or service.persistence is None:
            continue
        pin = Pin(
            virtual_service=service.key,
            service=owners.get(service.key),
            client=connection.client_address,
            netmask=service.persistence.netmask,
            real_server=RealServerKey(connection.real_address, connection.real_port),
            pod=pods.get(connection.real_address),
            expires=connection.expires,
            timeout=service.persistence.timeout,
        )
        if where.matches(pin):
            pins.append(pin)
    return sorted(pins, key=_pin_order)


def _service_of(template: Connection, table: Table) -> VirtualService | None:
    key = template.virtual_service
    service = table.get(key)
    if service is None and not key.is_fwmark and key.port == 0:
        return table.get(replace(key, port=FTP_PORT))
    return service


def _pin_order(pin: Pin) -> tuple[tuple[int, int, bytes, int], int, bytes, int, int, bytes, int]:
    real = pin.real_server
    return (
        pin.virtual_service.sort_key(),
        family_of(pin.client),
        packed_address(pin.client),
        pin.netmask,
        family_of(real.address),
        packed_address(real.address),
        real.port,
    )


@dataclass(frozen=True, slots=True)
class ClusterChoice:
    """The real server every node's Maglev table gives a new client of a cluster-scope virtual service."""

    virtual_service: ServiceKey
    service: ObjectRef | None
    client: str
    real_server: RealServerKey | None  # None: no server may be chosen (none, or all at weight 0)
    pod: ObjectRef | None


def cluster_choices(
    table: Table,
    *,
    client: str,
    owners: Mapping[ServiceKey, ObjectRef] | None = None,
    pods: Mapping[str, ObjectRef] | None = None,
    where: PinFilter | None = None,
) -> list[ClusterChoice]:
    """For each cluster-scope virtual service of the client's family: its cluster-wide choice for ``client``."""
    owners = owners or {}
    pods = pods or {}
    where = where or PinFilter()
    choices = []
    for virtual in table:
        owner = owners.get(virtual.key)
        if not is_cluster_scope(virtual) or virtual.key.family != family_of(client):
            continue
        if not where.selects(virtual.key, owner):
            continue
        chosen = lookup_table(virtual).choose(client)
        choices.append(
            ClusterChoice(
                virtual_service=virtual.key,
                service=owner,
                client=client,
                real_server=None if chosen is None else chosen.key,
                pod=None if chosen is None else pods.get(chosen.address),
            )
        )
    return choices


# --- rendering ------------------------------------------------------------------------------------

_HEADERS = ("SERVICE", "VIP", "CLIENT", "REAL SERVER", "POD", "EXPIRES")


def pins_text(pins: Sequence[Pin]) -> str:
    """An aligned table, one pin a row; EXPIRES is ``left/timeout`` in seconds; names escaped (``printable``)."""
    if not pins:
        return "no client is pinned\n"
    rows = [_HEADERS] + [
        (
            printable(str(pin.service)) if pin.service else "-",
            str(pin.virtual_service),
            pin.client_network,
            str(pin.real_server),
            printable(str(pin.pod)) if pin.pod else "-",
            f"{pin.expires}s/{pin.timeout}s",
        )
        for pin in pins
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(_HEADERS))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n" for row in rows
    )


_CHOICE_HEADERS = ("SERVICE", "VIP", "CLIENT", "CLUSTER-WIDE CHOICE", "POD")


def choices_text(choices: Sequence[ClusterChoice]) -> str:
    """The cluster-wide choices as an aligned table under a title ('' when there are none)."""
    if not choices:
        return ""
    rows = [_CHOICE_HEADERS] + [
        (
            printable(str(choice.service)) if choice.service else "-",
            str(choice.virtual_service),
            choice.client,
            str(choice.real_server) if choice.real_server else "none available",
            printable(str(choice.pod)) if choice.pod else "-",
        )
        for choice in choices
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(_CHOICE_HEADERS))]
    title = "cluster-wide affinity: a new connection reaches this server through any node\n"
    return title + "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n" for row in rows
    )


def choices_json(choices: Sequence[ClusterChoice]) -> list[JSON]:
    """The ``clusterChoices`` of the JSON document."""
    return [
        {
            "service": ref_json(choice.service),
            "virtualService": {
                "protocol": choice.virtual_service.protocol.value,
                "address": choice.virtual_service.address,
                "port": choice.virtual_service.port,
            },
            "client": choice.client,
            "realServer": None
            if choice.real_server is None
            else {"address": choice.real_server.address, "port": choice.real_server.port},
            "pod": ref_json(choice.pod),
        }
        for choice in choices
    ]


def pins_json(pins: Sequence[Pin]) -> JSON:
    """The pins as a JSON-ready document (schema ``ipvsctl.affinity/v1``, see the module docstring)."""
    return {"schema": SCHEMA, "pins": [_pin_json(pin) for pin in pins]}


def _pin_json(pin: Pin) -> JSON:
    key = pin.virtual_service
    return {
        "service": ref_json(pin.service),
        "virtualService": {"protocol": key.protocol.value, "address": key.address, "port": key.port},
        "clientNetwork": pin.client_network,
        "realServer": {"address": pin.real_server.address, "port": pin.real_server.port},
        "pod": ref_json(pin.pod),
        "expiresSeconds": pin.expires,
        "timeoutSeconds": pin.timeout,
    }
