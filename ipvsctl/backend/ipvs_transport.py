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
from collections.abc import Sequence
from typing import Protocol

from ipvsctl.backend.netlink_codec import Request
from ipvsctl.model import ServiceKey, VirtualService

__all__ = ["Attributes", "IpvsTransport", "KernelRefusalError", "ServiceRecord"]

Attributes = dict[str, object]
ServiceRecord = tuple[VirtualService, list[Attributes]]
"""A service (settings only) and the attributes of its destinations, as ``netlink_codec.decode_real`` reads them."""


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

    async def execute(self, requests: Sequence[Request]) -> list[int]:
        """Perform independent requests (any order is correct); the errno of each, 0 when it succeeded."""
        ...

    def close(self) -> None:
        """Close the socket."""
        ...
