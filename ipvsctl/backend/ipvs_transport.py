"""How the netlink backend talks to IPVS: the ``IpvsTransport`` protocol and the values it moves.

A transport moves IPVS requests and answers as ``netlink_codec`` values (``Request`` out; attribute
mappings back); the backend turns them into model values. Two implementations:

- ``Pyroute2Transport`` (``ipvs_pyroute2``): pyroute2's ``AsyncIPVS`` and its ``ipvsmsg`` nla map, one request at
  a time. The reference implementation, and what the lean one is checked against.
- ``LeanTransport`` (``ipvs_lean``): a raw socket with ``ipvs_wire``'s encoder and decoder, requests
  batched several to one ``sendmsg``: the default, 15-30x faster (issue 6).

Both run the whole contract suite in the kernel lab.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ipvsctl.backend.netlink_codec import Request, decode_connections, decode_real, stats_counters
from ipvsctl.model import ConnectionCounts, RealServer, RealServerKey, ServiceKey, VirtualService

__all__ = [
    "Attributes",
    "DecodedDest",
    "IpvsTransport",
    "KernelRefusalError",
    "ServiceRecord",
    "decode_dest",
    "with_reals",
]

Attributes = dict[str, object]
DecodedDest = tuple[RealServer, RealServerKey, ConnectionCounts, tuple[int, ...]]
"""A destination: its real server and that server's key, connection counts and stats counters
(``RealServerStats(*counters)``)."""
ServiceRecord = tuple[VirtualService, list[DecodedDest]]
"""A service (with its real servers) and its destinations."""


class KernelRefusalError(Exception):
    """The kernel refused one request (its errno), as our own type."""

    def __init__(self, code: int) -> None:
        self.errno = code
        self.message = os.strerror(code)
        super().__init__(code, self.message)


class IpvsTransport(Protocol):
    """IPVS requests out, attributes back. Not safe for concurrent use: the backend serialises calls."""

    async def read(self, only: Sequence[ServiceKey] | None) -> list[ServiceRecord]:
        """Every service (or those of ``only`` that exist) with its destinations; services the model
        cannot hold (another protocol or family) are left out."""
        ...

    async def service_keys(self) -> list[ServiceKey]:
        """The key of every service the model can hold, from one service dump (no destinations)."""
        ...

    async def execute(self, requests: Sequence[Request]) -> list[int]:
        """Perform independent requests (any order is correct); the errno of each, 0 when it succeeded."""
        ...

    def close(self) -> None:
        """Close the socket."""
        ...


def decode_dest(attributes: Mapping[str, Any], *, key: ServiceKey) -> DecodedDest:
    """A destination of the service ``key`` from its decoded attributes."""
    counters = attributes.get("IPVS_DEST_ATTR_STATS", {})
    real = decode_real(attributes, key=key)
    return (
        real,
        real.key,
        decode_connections(attributes),
        stats_counters(counters if isinstance(counters, Mapping) else {}),
    )


def with_reals(service: VirtualService, dests: Sequence[DecodedDest]) -> VirtualService:
    """The service (settings only) with the real servers of ``dests``."""
    return VirtualService(  # by hand: dataclasses.replace costs twice as much
        service.key,
        scheduler=service.scheduler,
        persistence=service.persistence,
        sched_flags=service.sched_flags,
        one_packet=service.one_packet,
        pe_name=service.pe_name,
        reals=tuple(dest[0] for dest in dests),
    )
