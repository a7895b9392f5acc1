"""Which elements the sets of ipvsctl's nftables table hold for a desired table (pure).

The rules of the table (``ruleset.py``) never change with the Services: every decision is a set
lookup, so a Service change is a change of set elements, and the rule count does not grow with the
Service count. An element is ``(set, value)``, the value a tuple as nft writes it
(``("203.0.113.10", "tcp", 80)``). Per family:

- ``vips``: every address on the agent's interface; the VIP filter applies to these only.
- ``services``: address . protocol . port of each virtual service at those addresses; the filter lets
  these through.
- ``masquerade``: external VIPs (NodePort, externalIP, ingress IP) of ``externalTrafficPolicy: Cluster``
  Services; their traffic is source-NATed to the node.
- ``cluster``: ClusterIP VIPs, when the cluster CIDRs are known; NATed unless it comes from the pod network.
- ``hairpin``: real server . protocol . port . real server (masquerading ones): a pod that reaches
  itself through a VIP is NATed.
- ``ranged``: ingress-IP VIPs with ``loadBalancerSourceRanges``; ``allowed``: VIP . protocol . port .
  source range (intervals), the sources let through to them.

The ``--cluster-cidr`` ranges ("the pod network") are part of the table's definition, not elements: they
are the agent's configuration and never change while it runs.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, KeysView, Mapping
from enum import StrEnum
from typing import Final, NamedTuple

from ipvsctl.model import Forwarding, Protocol, ServiceKey, VirtualService, family_of
from ipvsctl.translate import VipKind, VipRole

__all__ = [
    "DesiredElements",
    "Element",
    "ElementCounts",
    "Kind",
    "desired_elements",
    "element_changes",
    "key_elements",
    "set_name",
    "vip_element",
]


class Kind(StrEnum):
    """The kinds of set; each exists once per family (``set_name``)."""

    VIPS = "vips"
    SERVICES = "services"
    MASQUERADE = "masquerade"
    CLUSTER = "cluster"
    HAIRPIN = "hairpin"
    RANGED = "ranged"
    ALLOWED = "allowed"

    @property
    def interval(self) -> bool:
        """Whether the set holds ranges (source CIDRs) rather than single values."""
        return self is Kind.ALLOWED


Value = tuple[str | int, ...]
Element = tuple[str, Value]
"""A set's name (``services4``) and one value of it."""


def set_name(kind: Kind, family: int) -> str:
    """``services4``, ``hairpin6``: the set of a kind for one address family."""
    return f"{kind.value}{family}"


class _SetNames(NamedTuple):
    """The sets of one family, by kind (looked up for every desired virtual service)."""

    vips: str
    services: str
    masquerade: str
    cluster: str
    hairpin: str
    ranged: str
    allowed: str


_NAMES: Final = {family: _SetNames(**{kind.name.lower(): set_name(kind, family) for kind in Kind}) for family in (4, 6)}
_PROTOCOL_TEXT: Final = {protocol: protocol.value for protocol in Protocol}


def vip_element(address: str) -> Element:
    """The element that puts an address under the VIP filter."""
    return set_name(Kind.VIPS, family_of(address)), (address,)


def key_elements(service: VirtualService, role: VipRole, *, filtered: bool, cluster_masquerade: bool) -> list[Element]:
    """The elements one desired virtual service needs.

    ``filtered``: its address is on the agent's interface (not a node address), so the VIP filter must let
    its port through. ``cluster_masquerade``: the cluster CIDRs of its family are known, so ClusterIP
    traffic from outside them is masqueraded (as kube-proxy does with ``--cluster-cidr``).
    """
    key = service.key
    protocol = key.protocol
    if protocol is Protocol.FWMARK:
        return []
    names = _NAMES[family_of(key.address)]
    text = _PROTOCOL_TEXT[protocol]  # the names are read once per family and protocol: Enum.value is a Python call
    value: Value = (key.address, text, key.port)
    elements: list[Element] = []
    if filtered:
        elements.append((names.services, value))
    kind = role.kind
    if kind is not VipKind.CLUSTER_IP and not role.local:
        elements.append((names.masquerade, value))
    if kind is VipKind.CLUSTER_IP and cluster_masquerade:
        elements.append((names.cluster, value))
    if kind is VipKind.LOAD_BALANCER and role.source_ranges is not None:
        elements.append((names.ranged, value))
        family = family_of(key.address)
        elements.extend(
            (names.allowed, (*value, cidr)) for cidr in role.source_ranges if _family_of_cidr(cidr) == family
        )
    hairpin = names.hairpin
    for real in service.reals:
        if real.forwarding is Forwarding.MASQ:
            address = real.address
            elements.append((hairpin, (address, text, real.port, address)))
    return elements


def _family_of_cidr(cidr: str) -> int:
    return 6 if ":" in cidr else 4


class ElementCounts:
    """The desired elements as a multiset: several virtual services may need one element (a hairpin pod).

    ``replace`` swaps one contributor's elements for new ones and says which elements appeared or vanished,
    so an incremental sync touches only those in the kernel.
    """

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[Element, int] = {}  # a plain dict: Counter's __missing__ is a Python call per new element

    def __contains__(self, element: object) -> bool:
        return element in self._counts

    def __iter__(self) -> Iterator[Element]:
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)

    def view(self) -> KeysView[Element]:
        """The elements, as a live set-like view (its lookups and set operations are C, not a method call each)."""
        return self._counts.keys()

    def replace(self, old: Collection[Element], new: Collection[Element]) -> tuple[set[Element], set[Element]]:
        """Drop ``old`` and count ``new``; the elements now wanted that were not, and those no longer wanted."""
        counts = self._counts
        appeared: set[Element] = set()
        vanished: set[Element] = set()
        for element in new:
            count = counts.get(element, 0) + 1
            counts[element] = count
            if count == 1:
                appeared.add(element)
        if not old:  # a key's first elements
            return appeared, vanished
        for element in old:
            count = counts.get(element, 0) - 1
            if count == 0:
                del counts[element]
                vanished.add(element)
            else:
                counts[element] = count
        return appeared - vanished, vanished - appeared


def desired_elements(
    services: Mapping[ServiceKey, VirtualService],
    roles: Mapping[ServiceKey, VipRole],
    *,
    filtered_addresses: Collection[str],
    cluster_families: Collection[int] = (),
) -> set[Element]:
    """Every element a whole desired table needs (``filtered_addresses``: those bound to the agent's interface;
    ``cluster_families``: the families with cluster CIDRs)."""
    elements: set[Element] = {vip_element(address) for address in filtered_addresses}
    for key, service in services.items():
        role = roles.get(key)
        if role is not None:
            elements.update(
                key_elements(
                    service,
                    role,
                    filtered=key.address in filtered_addresses,
                    cluster_masquerade=key.family in cluster_families,
                )
            )
    return elements


class DesiredElements:
    """The elements a node's desired table needs, kept up to date one VIP key at a time (the agent's view).

    Each key contributes its elements (``key_elements``), plus its address under the VIP filter when it is
    ``filtered``; an element shared by several keys (a pod's hairpin, an address with several ports) stays
    while any of them needs it. ``update`` answers what appeared and what vanished, which is exactly what an
    incremental sync writes to the kernel.
    """

    __slots__ = ("_cluster_families", "_counts", "_of_key")

    def __init__(self, *, cluster_families: Collection[int] = ()) -> None:
        self._counts = ElementCounts()
        self._of_key: dict[ServiceKey, list[Element]] = {}
        self._cluster_families = frozenset(cluster_families)

    def __iter__(self) -> Iterator[Element]:
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)

    def __contains__(self, element: object) -> bool:
        return element in self._counts

    def view(self) -> KeysView[Element]:
        """Every element wanted now, as a live set-like view."""
        return self._counts.view()

    def update(
        self, key: ServiceKey, service: VirtualService | None, role: VipRole | None, *, filtered: bool
    ) -> tuple[set[Element], set[Element]]:
        """The key now wants ``service`` (None: nothing); the elements that appeared and that vanished."""
        new: list[Element] = []
        if service is not None and role is not None:
            address = key.address
            family = family_of(address)
            new = key_elements(service, role, filtered=filtered, cluster_masquerade=family in self._cluster_families)
            if filtered and key.protocol is not Protocol.FWMARK:
                new.append((_NAMES[family].vips, (address,)))  # vip_element's
        old = self._of_key.pop(key, [])
        if new:
            self._of_key[key] = new
        return self._counts.replace(old, new)


def element_changes(wanted: Collection[Element], current: Collection[Element]) -> tuple[set[Element], set[Element]]:
    """What to add to ``current`` and what to delete from it to hold exactly ``wanted``."""
    wanted_set = set(wanted)  # set operations in C, not a __contains__ call of ``wanted`` per element
    return wanted_set.difference(current), set(current).difference(wanted_set)
