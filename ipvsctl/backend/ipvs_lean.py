"""The lean IPVS transport: ``ipvs_wire``'s codec over a batching ``NetlinkChannel``.

Why it is fast (issue 6; pyroute2 spends 15-30x ``ipvsadm``'s time encoding and decoding): requests are
encoded straight to bytes and sent up to ``BATCH`` per ``sendmsg``, only the last acknowledged
(``netlink_channel``); dump answers are decoded by layouts learnt from the first reply of each length
(``ipvs_layout``), a whole ``recv`` buffer at a time when its replies share one length.

Dumps cannot be pipelined on one socket (a second dump while one runs is EBUSY), so the destinations
of each service cost one request and two ``recv`` calls, as they do for ``ipvsadm``. Large reads and
batches run in a worker thread, so the event loop is not held while thousands of messages go by.
"""

from __future__ import annotations

import asyncio
import errno
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from ipvsctl.backend.ipvs_layout import DestValues, Memo, dest_decoder, service_decoder
from ipvsctl.backend.ipvs_transport import (
    Attributes,
    DecodedDest,
    KernelRefusalError,
    ServiceRecord,
    decode_dest,
    with_reals,
)
from ipvsctl.backend.ipvs_wire import NLMSG_DONE, NLMSG_ERROR, Buffer, Reply, encode_request
from ipvsctl.backend.netlink_channel import BATCH, NLM_F_DUMP, NLM_F_REQUEST, NetlinkChannel
from ipvsctl.backend.netlink_codec import (
    Request,
    decode_service,
    dest_dump_request,
    service_dump_request,
    service_get_request,
)
from ipvsctl.model import ServiceKey, VirtualService

__all__ = ["LeanTransport"]

_T = TypeVar("_T")
_K = TypeVar("_K")
_KeyedService = tuple[tuple[Any, ...], VirtualService | None]  # a service by the fields it came from
_SEQUENCE = struct.Struct("=I")
_DONE = struct.Struct("=IHHIIi")  # nlmsghdr and the dump's status
_SEQUENCE_AT = 8  # in struct nlmsghdr: length u32, type u16, flags u16, then the sequence number
THREAD_THRESHOLD = 64  # more requests (or a full read) than this run in a worker thread
_NETLINK_GENERIC = 16


class LeanTransport:
    """IPVS over a raw generic-netlink socket (see the module docstring)."""

    def __init__(self, descriptor: int, *, family_id: int) -> None:
        self._channel = NetlinkChannel(descriptor, protocol=_NETLINK_GENERIC, target="IPVS")
        self._family_id = family_id
        self._decode_service = service_decoder()
        self._decode_dest = dest_decoder()
        self._dests_seen: Memo[tuple[Any, ...], DestValues] = Memo()
        self._services_seen: Memo[tuple[Any, ...], VirtualService] = Memo()
        self._dump_requests: Memo[ServiceKey, bytes] = Memo()
        self._whole_services: Memo[tuple[object, ...], VirtualService] = Memo()

    async def read(self, only: Sequence[ServiceKey] | None) -> list[ServiceRecord]:
        """Dump (or get, batched) the services, then dump each one's destinations."""
        if only is not None and len(only) <= THREAD_THRESHOLD:
            return self._read(only)
        return await asyncio.to_thread(self._read, only)

    async def execute(self, requests: Sequence[Request]) -> list[int]:
        """Send the requests in batches; the errno of each (0: done)."""
        if len(requests) <= THREAD_THRESHOLD:
            return self._execute(requests)
        return await asyncio.to_thread(self._execute, requests)

    def close(self) -> None:
        """Close the socket."""
        self._channel.close()

    # --- blocking work ----------------------------------------------------------------------------------

    def _read(self, only: Sequence[ServiceKey] | None) -> list[ServiceRecord]:
        if only is None:
            for memo in (self._dests_seen, self._services_seen, self._dump_requests, self._whole_services):
                memo.next_generation()
            answers = self._dump(
                self._message(service_dump_request(), dump=True),
                batch=self._service_batch,
                one=self._service_one,
                key=None,
            )
        else:
            answers = [self._keyed(attributes) for attributes in self._get_services(only)]
        records: list[ServiceRecord] = []
        for fields, service in answers:
            if service is None:
                continue  # a protocol or family the model cannot hold: not ours to touch
            dests = self._dests(service.key)
            # The same settings and the very same real server objects (kept alive by the memoised service,
            # so their ids cannot be reused meanwhile) give the service of the last read.
            whole = (fields, *[id(dest[0]) for dest in dests])
            full = self._whole_services.get(whole)
            if full is None:
                full = with_reals(service, dests)
                self._whole_services.put(whole, full)
            records.append((full, dests))
        return records

    def _dests(self, key: ServiceKey) -> list[DecodedDest]:
        """The destinations of one service (a dump)."""
        message = self._dump_requests.get(key)
        if message is None:
            message = self._message(dest_dump_request(key), dump=True)
            self._dump_requests.put(key, message)
        return self._dump(message, batch=self._dest_batch, one=self._dest_one, key=key)

    def _dest_batch(self, data: memoryview, seq: int, key: ServiceKey) -> list[DecodedDest] | None:
        return self._decode_dest.many_dests(data, message_type=self._family_id, seq=seq, key=key, memo=self._dests_seen)

    def _dest_one(self, payload: Buffer, key: ServiceKey) -> DecodedDest:
        return decode_dest(self._decode_dest(payload), key=key)

    def _service_batch(self, data: memoryview, seq: int, _key: None) -> list[_KeyedService] | None:
        return self._decode_service.many_keyed(
            data, message_type=self._family_id, seq=seq, memo=self._services_seen, decode=decode_service
        )

    def _service_one(self, payload: Buffer, _key: None) -> _KeyedService:
        return self._keyed(self._decode_service(payload))

    def _keyed(self, attributes: Attributes) -> _KeyedService:
        """A service by its attributes (memoised under them)."""
        fields = tuple(attributes.items())
        service = self._services_seen.get(fields)
        if service is None:
            service = decode_service(attributes)
            if service is not None:
                self._services_seen.put(fields, service)
        return fields, service

    def _message(self, request: Request, *, dump: bool) -> bytes:
        """A request's message with sequence number 0 (``_dump`` writes the real one in)."""
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
        return encode_request(request, family_id=self._family_id, flags=flags, seq=0)

    def _get_services(self, keys: Sequence[ServiceKey]) -> list[Attributes]:
        """GET_SERVICE of every key, batched; keys without a service (ESRCH) are left out."""
        found: list[Attributes] = []
        for start in range(0, len(keys), BATCH):
            for _, reply in self._batch([service_get_request(key) for key in keys[start : start + BATCH]]):
                if reply.error is None:
                    found.append(self._decode_service(reply.payload))
                elif reply.error != errno.ESRCH:
                    raise KernelRefusalError(reply.error)
        return found

    def _execute(self, requests: Sequence[Request]) -> list[int]:
        results = [0] * len(requests)
        for start in range(0, len(requests), BATCH):
            for index, reply in self._batch(requests[start : start + BATCH]):
                if reply.error:
                    results[start + index] = reply.error
        return results

    def _batch(self, requests: Sequence[Request]) -> Iterator[tuple[int, Reply]]:
        """The requests in one batch (``NetlinkChannel.batch``): (index, answer) of replies and errors."""
        family = self._family_id
        return self._channel.batch(
            len(requests),
            lambda index, seq, extra: encode_request(
                requests[index], family_id=family, flags=NLM_F_REQUEST | extra, seq=seq
            ),
        )

    def _dump(
        self,
        message: bytes,
        *,
        batch: Callable[[memoryview, int, _K], list[_T] | None],
        one: Callable[[Buffer, _K], _T],
        key: _K,
    ) -> list[_T]:
        """The decoded answers of one dump request, up to its NLMSG_DONE.

        Each buffer is first offered to ``batch`` (every reply at once, ``LayoutDecoder``); if it declines,
        the buffer is taken reply by reply with ``one``; both get ``key`` (bound methods, not closures: a
        closure per service cost more than its decoding under the lab's emulation).
        """
        channel = self._channel
        sequence = channel.sequences(1)
        channel.send(message[:_SEQUENCE_AT] + _SEQUENCE.pack(sequence) + message[_SEQUENCE_AT + _SEQUENCE.size :])
        answers: list[_T] = []
        while True:
            data = channel.receive()
            if len(data) == _DONE.size:  # the usual last buffer, a lone NLMSG_DONE: checked in one unpack
                length, kind, _, seq, _, status = _DONE.unpack_from(data)
                if (length, kind, seq, status) == (_DONE.size, NLMSG_DONE, sequence, 0):
                    return answers
            decoded = batch(data, sequence, key)
            if decoded is not None:
                answers.extend(decoded)
                continue
            for reply in channel.replies(data):
                if reply.seq != sequence:
                    continue
                if reply.type == NLMSG_DONE:
                    if reply.error:  # the dump broke off part-way: a shorter answer would pass for the whole
                        raise KernelRefusalError(reply.error)
                    return answers
                if reply.type == NLMSG_ERROR:
                    raise KernelRefusalError(reply.error or errno.EPROTO)
                answers.append(one(reply.payload, key))
