"""Which addresses a Service may claim as a VIP, or name as a real server (pure).

One rule for every source of addresses (``spec.clusterIPs``, ``spec.externalIPs``,
``status.loadBalancer.ingress``, node addresses, endpoints): an address that is not an ordinary
unicast address of one host is never programmed. A Service that could make the agent bind
``127.0.0.1`` or ``0.0.0.0``, or send a VIP's traffic to a multicast group, would take over the
node's own sockets or its routing; the apiserver validates some of these, but manifests,
older apiservers and ``status`` writers do not.

Refused, with the word each refusal uses:

- ``unspecified`` (``0.0.0.0``, ``::``) and ``this-network`` (``0.0.0.0/8``);
- ``loopback`` (``127.0.0.0/8``, ``::1``);
- ``link-local`` (``169.254.0.0/16``, ``fe80::/10``) and ``zone-scoped`` (``fe80::1%eth0``);
- ``multicast`` (``224.0.0.0/4``, ``ff00::/8``), ``broadcast`` (``255.255.255.255``) and
  ``reserved`` (``240.0.0.0/4``);
- ``IPv4-mapped`` (``::ffff:0:0/96``) and ``IPv4-compatible`` (``::/96``): an IPv6 spelling of an
  IPv4 address, which the kernel treats as neither family's VIP.

A node's own addresses are refused as VIPs too (``translate`` checks them against the node), except
for NodePorts, which live on them by definition.
"""

from __future__ import annotations

import functools
import ipaddress

__all__ = ["special_address"]

_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_RESERVED_V4 = ipaddress.IPv4Network("240.0.0.0/4")
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")


def special_address(address: str) -> str | None:
    """What makes ``address`` unfit as a VIP or real server (``"loopback"``, ...), None for plain unicast.

    ``address`` is canonical (see ``model.canonical_ip``); anything that is not an address at all is
    ``"invalid"``. Translation asks this for every endpoint of every Service port, so the usual answers
    come from the text alone: an IPv4 address by its first octet, an IPv6 one outside ``0::/8``,
    ``fe00::/8`` and ``ff00::/8`` at once; only the rest is parsed (and the answer kept).
    """
    if ":" not in address:
        first, dot, _ = address.partition(".")
        if dot and first.isascii() and first.isdigit() and len(first) <= 3:
            return _special_v4_octet(address, int(first))
    elif address[0] not in ":0f" or (address[:2] not in ("fe", "ff") and address[0] == "f"):
        return "zone-scoped" if "%" in address else None
    return _special_parsed(address)


def _special_v4_octet(address: str, first: int) -> str | None:
    """The IPv4 kinds, all decided by the first octet (and 169.254/16, 255.255.255.255)."""
    if first == 0:
        return "unspecified" if address == "0.0.0.0" else "this-network"  # noqa: S104 (compared, not bound)
    if first == 127:
        return "loopback"
    if first == 169 and address.startswith("169.254."):
        return "link-local"
    if 224 <= first <= 239:
        return "multicast"
    if address == "255.255.255.255":
        return "broadcast"
    if first >= 240:
        return "reserved"
    return None


@functools.lru_cache(maxsize=4096)
def _special_parsed(address: str) -> str | None:
    if "%" in address:
        return "zone-scoped"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "invalid"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address):
        return _special_v4(ip)
    return _special_v6(ip)


def _special_v4(ip: ipaddress.IPv4Address) -> str | None:
    if ip in _THIS_NETWORK:
        return "this-network"
    if ip == _BROADCAST:
        return "broadcast"
    if ip in _RESERVED_V4:
        return "reserved"
    return None


def _special_v6(ip: ipaddress.IPv6Address) -> str | None:
    if ip in _MAPPED:
        return "IPv4-mapped"
    if ip in _COMPATIBLE:
        return "IPv4-compatible"
    return None
