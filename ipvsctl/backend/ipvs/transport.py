"""How the kernel backend talks to IPVS: the ``IpvsTransport`` protocol.

A transport moves ``codec`` values: ``Request`` objects out, ``ServiceRecord`` objects (a service with its
real servers, and its ``DecodedDest`` destinations) back. Two implementations:

- ``Pyroute2Transport`` (``pyroute2``): pyroute2's ``AsyncIPVS`` and its ``ipvsmsg`` nla map, one request at
  a time. The reference implementation, and what the lean one is checked against.
- ``LeanTransport`` (``lean``): a raw socket with ``wire``'s encoder and decoder, requests batched several to
  one ``sendmsg``, reading again without decoding what did not change (``reread``): the default, 15-30x
  faster (issue 6).

Both run the whole contract suite in the kernel lab. A transport raises ``KernelRefusalError`` for a read
the kernel refused, ``WireFormatError`` for an answer it cannot read, ``BackendError`` for a socket gone;
anything else is a bug and goes up as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ipvsctl.backend.base import IpvsTimeouts
from ipvsctl.backend.ipvs.codec import Request, ServiceRecord, TrafficRecord
from ipvsctl.model import Operation, ServiceKey

__all__ = ["NO_IPVS", "IpvsTransport"]

NO_IPVS = "no IPVS in this kernel (modprobe ip_vs)"  # why a transport cannot open


class IpvsTransport(Protocol):
    """IPVS requests out, records back. Not safe for concurrent use: the backend serialises calls."""

    async def read(self, only: Sequence[ServiceKey] | None) -> list[ServiceRecord]:
        """Every service (or those of ``only`` that exist) with its destinations; services the model
        cannot hold (another protocol or family) are left out."""
        ...

    async def traffic(self) -> list[TrafficRecord]:
        """A stats dump: every service the model can hold, with its destinations, their counters and rates."""
        ...

    async def service_keys(self) -> list[ServiceKey]:
        """The key of every service the model can hold, from one service dump (no destinations)."""
        ...

    async def execute(self, requests: Sequence[Request]) -> list[int]:
        """Perform independent requests (any order is correct); the errno of each, 0 when it succeeded."""
        ...

    async def perform(self, operations: Sequence[Operation]) -> list[int]:
        """Perform independent operations (check ``encoding_problem`` first): ``execute`` of their requests."""
        ...

    async def timeouts(self) -> IpvsTimeouts:
        """The connection timeouts, from one GET_CONFIG (set them with ``execute``: SET_CONFIG answers nothing)."""
        ...

    def close(self) -> None:
        """Close the socket."""
        ...
