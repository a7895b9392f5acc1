"""The lean IPVS transport: ``wire``'s codec over a batching ``NetlinkChannel``, no pyroute2.

Why it is fast (issue 6; pyroute2 spends 15-30x ``ipvsadm``'s time encoding and decoding): requests are
encoded straight to bytes (operations on real servers by one struct call each, ``wire.OperationMessages``) and
sent up to ``BATCH`` per ``sendmsg``, only the last acknowledged
(``netlink.channel``); reads decode only what changed since the last read (``reread``), through layouts
learnt from the first reply of each length (``layout``). The IPVS family's id comes from the generic-netlink
controller over the same socket (``netlink.genl``). Large reads and batches run in a worker thread, so the
event loop is not held while thousands of messages go by.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

from ipvsctl.backend.base import IpvsTimeouts
from ipvsctl.backend.ipvs.attributes import FAMILY_NAME
from ipvsctl.backend.ipvs.codec import Request, ServiceRecord, TrafficRecord, decode_timeouts, timeouts_get_request
from ipvsctl.backend.ipvs.reread import TableReader
from ipvsctl.backend.ipvs.traffic import read_traffic
from ipvsctl.backend.ipvs.transport import NO_IPVS
from ipvsctl.backend.ipvs.wire import OperationMessages, batch_encoder, decode_timeouts_reply
from ipvsctl.backend.netlink.channel import BATCH, Encoder, NetlinkChannel, blocking
from ipvsctl.backend.netlink.genl import family_id
from ipvsctl.backend.netlink.message import NLM_F_REQUEST, KernelRefusalError, WireFormatError
from ipvsctl.backend.netlink.netns import NETLINK_GENERIC
from ipvsctl.errors import BackendError
from ipvsctl.model import Operation, ServiceKey

__all__ = ["LeanTransport"]

_TARGET = "IPVS"
_T = TypeVar("_T")


class LeanTransport:
    """IPVS over a raw generic-netlink socket (see the module docstring)."""

    def __init__(self, descriptor: int) -> None:
        """Over the generic-netlink socket ``descriptor``, which it owns (closed by ``close``, or at once when
        the transport cannot be made); BackendError without IPVS."""
        self._channel = NetlinkChannel(descriptor, protocol=NETLINK_GENERIC, target=_TARGET)
        try:
            self._family_id = family_id(self._channel, FAMILY_NAME)
        except KernelRefusalError as refusal:
            self._channel.close()
            raise BackendError(NO_IPVS, target=_TARGET, errno=refusal.errno) from refusal
        except BaseException:
            self._channel.close()
            raise
        self._reader = TableReader(self._channel, family_id=self._family_id)
        self._operations = OperationMessages(family_id=self._family_id)

    async def read(self, only: Sequence[ServiceKey] | None) -> list[ServiceRecord]:
        """Dump (or get, batched) the services, then dump each one's destinations."""
        if only is None:
            return await asyncio.to_thread(self._reader.read_all)
        keys = list(only)
        return await blocking(lambda: self._reader.read_some(keys), size=len(keys))

    async def service_keys(self) -> list[ServiceKey]:
        """One service dump, no destinations."""
        return await asyncio.to_thread(self._reader.service_keys)

    async def traffic(self) -> list[TrafficRecord]:
        """A stats dump (``traffic``), decoded in full."""
        return await asyncio.to_thread(read_traffic, self._channel, family_id=self._family_id)

    async def execute(self, requests: Sequence[Request]) -> list[int]:
        """Send the requests in batches; the errno of each (0: done)."""
        return await blocking(lambda: self._execute(requests), size=len(requests))

    async def perform(self, operations: Sequence[Operation]) -> list[int]:
        """Send the operations' messages (``OperationMessages``: no request objects) in batches; the errno of each."""
        encode = self._operations.message

        def encoder(chunk: Sequence[Operation]) -> Encoder:
            return lambda index, seq, extra: encode(chunk[index], flags=NLM_F_REQUEST | extra, seq=seq)

        return await blocking(lambda: self._in_batches(operations, encoder=encoder), size=len(operations))

    async def timeouts(self) -> IpvsTimeouts:
        """One GET_CONFIG, acknowledged (a refusal is a KernelRefusalError)."""
        encode = batch_encoder([timeouts_get_request()], family_id=self._family_id)
        answers = self._channel.request(encode, lambda reply: decode_timeouts(decode_timeouts_reply(reply.payload)))
        if len(answers) != 1:
            raise WireFormatError(f"GET_CONFIG answered with {len(answers)} replies, not one")
        return answers[0]

    def close(self) -> None:
        """Close the socket."""
        self._channel.close()

    def _execute(self, requests: Sequence[Request]) -> list[int]:
        return self._in_batches(requests, encoder=lambda chunk: batch_encoder(chunk, family_id=self._family_id))

    def _in_batches(self, items: Sequence[_T], *, encoder: Callable[[Sequence[_T]], Encoder]) -> list[int]:
        results = [0] * len(items)
        for start in range(0, len(items), BATCH):
            chunk = items[start : start + BATCH]
            for index, reply in self._channel.batch(len(chunk), encoder(chunk)):
                if reply.error:
                    results[start + index] = reply.error
        return results
