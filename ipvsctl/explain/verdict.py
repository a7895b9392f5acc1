"""What ipvsctl's nftables table does to one client's packets to one VIP:port (pure).

The elements (read from the kernel, from ``nft -j`` output, or the ones the agent writes) say per VIP what
``ipvsctl.netfilter.listing`` describes; here they are evaluated against the client address: whether the VIP
filter lets the port through, whether a source range admits the client, whether it is masqueraded.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ipvsctl.model import Forwarding, ServiceKey, VirtualService, family_of
from ipvsctl.netfilter.elements import Element, Kind, set_name, vip_element
from ipvsctl.netfilter.listing import Treatment, treatments

__all__ = ["NetfilterInput", "Verdict", "verdict"]


@dataclass(frozen=True, slots=True)
class NetfilterInput:
    """ipvsctl's nftables elements, where they come from (``kernel``, ``file`` or ``desired``: what the agent
    writes), whether the table is there (None: not known), and the pod network (``--cluster-cidr``, canonical;
    empty: not known)."""

    source: str
    elements: Collection[Element]
    present: bool | None = None
    cluster_cidrs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What ipvsctl's nftables table does to this client's packets to the VIP:port."""

    source: str
    present: bool | None
    filtered: bool  # the VIP's address is under the VIP filter
    port_open: bool  # the filter lets this protocol/port through
    source_ranges: tuple[str, ...] | None  # None: no restriction
    source_allowed: bool | None  # None: no restriction; False: dropped
    masquerade: bool | None  # None: depends on the pod network, which was not given
    masquerade_reason: str
    hairpin: bool  # the client is a real server of the VIP: its own connections to itself are NATed


_UNTREATED = Treatment()


def verdict(client: str, key: ServiceKey, live: VirtualService | None, netfilter: NetfilterInput) -> Verdict:
    """What the table does to ``client``'s packets to ``key`` (``live``: the matching virtual service, if any)."""
    elements = netfilter.elements
    family, protocol = key.family, key.protocol.value
    value = (key.address, protocol, key.port)
    treatment = treatments(elements).get(key, _UNTREATED)
    ranges = treatment.source_ranges
    allowed = None if ranges is None else any(_within(client, text) for text in ranges)
    hairpin = live is not None and any(
        (set_name(Kind.HAIRPIN, family), (client, protocol, real.port, client)) in elements
        for real in live.reals
        if real.address == client and real.forwarding is Forwarding.MASQ
    )
    masquerade, why = _masquerade(client, treatment, netfilter.cluster_cidrs, hairpin=hairpin)
    return Verdict(
        source=netfilter.source,
        present=netfilter.present,
        filtered=vip_element(key.address) in elements,
        port_open=(set_name(Kind.SERVICES, family), value) in elements,
        source_ranges=ranges,
        source_allowed=allowed,
        masquerade=masquerade,
        masquerade_reason=why,
        hairpin=hairpin,
    )


def _masquerade(
    client: str, treatment: Treatment, cluster_cidrs: Sequence[str], *, hairpin: bool
) -> tuple[bool | None, str]:
    if treatment.masquerade:
        return True, "an external VIP of a Cluster-policy Service: the pod sees the node's address"
    if treatment.cluster_masquerade:
        of_family = [cidr for cidr in cluster_cidrs if family_of(cidr.partition("/")[0]) == family_of(client)]
        if not of_family:
            return None, "a ClusterIP: masqueraded unless the client is in the pod network (--cluster-cidr decides)"
        inside = next((cidr for cidr in of_family if _within(client, cidr)), None)
        if inside is not None:
            return False, f"a ClusterIP, and the client is in the pod network {inside}: the pod sees the client"
        return True, "a ClusterIP, and the client is outside the pod network: the pod sees the node's address"
    if hairpin:
        return True, "hairpin: the client is a real server of this VIP, reaching itself, NATed to the node"
    return False, "the pod sees the client's own address"


def _within(client: str, text: str) -> bool:
    """Whether ``client`` is inside a source range as nft lists it: a CIDR or ``first-last``."""
    address = ipaddress.ip_address(client)
    first, dash, last = text.partition("-")
    try:
        if dash:
            low, high = ipaddress.ip_address(first), ipaddress.ip_address(last)
            return low.version == address.version == high.version and low <= address <= high  # type: ignore[operator]
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return network.version == address.version and address in network
