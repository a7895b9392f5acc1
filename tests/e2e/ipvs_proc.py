"""`/proc/net/ip_vs` read as data: each virtual service's real servers with weight and connection counts. Pure.

The bed watches every node's table through this file (cheap: no process per look, unlike ipvsadm) to time
convergence and to prove a table was never flushed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

HEADER_LINES = 3


@dataclass(frozen=True, slots=True)
class RealState:
    """A real server's weight and connection counts."""

    weight: int
    active: int
    inactive: int


Endpoint = tuple[str, int]  # address, port
VirtualKey = tuple[str, str, int]  # protocol, address, port
IpvsTable = dict[VirtualKey, dict[Endpoint, RealState]]


def _endpoint(text: str) -> Endpoint:
    """`C0000201:0050` (IPv4, network order) or `[2001:db8::1]:0050` as (address, port)."""
    host, _, port = text.rpartition(":")
    if host.startswith("["):
        address = str(ipaddress.IPv6Address(host[1:-1]))
    else:
        address = str(ipaddress.IPv4Address(int(host, 16)))
    return address, int(port, 16)


def parse_ip_vs(text: str) -> IpvsTable:
    """The virtual services (FWM ones are left out) and their real servers, from /proc/net/ip_vs."""
    table: IpvsTable = {}
    current: dict[Endpoint, RealState] | None = None
    for line in text.splitlines()[HEADER_LINES:]:
        words = line.split()
        if not words:
            continue
        if words[0] == "->":
            if current is not None:
                current[_endpoint(words[1])] = RealState(int(words[3]), int(words[4]), int(words[5]))
            continue
        if words[0] == "FWM":
            current = None
            continue
        address, port = _endpoint(words[1])
        current = table.setdefault((words[0], address, port), {})
    return table


def weights(table: IpvsTable, key: VirtualKey) -> dict[str, int]:
    """Real server address → weight of one virtual service ({} when it is absent)."""
    return {address: state.weight for (address, _), state in table.get(key, {}).items()}
