"""The lean IPVS transport: ``ipvs_wire``'s codec over a batching ``NetlinkChannel``.

Why it is fast (issue 6; pyroute2 spends 15-30x ``ipvsadm``'s time encoding and decoding): requests are
encoded straight to bytes and sent up to ``BATCH`` per ``sendmsg``, only the last acknowledged
(``netlink_channel``); dump answers are decoded by layouts learnt from the first reply of each length
(``ipvs_layout``), a whole ``recv`` buffer at a time when its replies share one length.

Dumps cannot be pipelined on one socket (a second dump while one runs is EBUSY), so the destinations
of each service cost one request and two ``recv`` calls, as they do for ``ipvsadm``. Large reads and
batches run in a worker thread, so the event loop is not held while thousands of messages go by.

Reading again (the agent's resync) decodes only what changed. Each service's destination dump keeps
its request, sequence number included, from read to read, so an unchanged service answers the very
same bytes: ``NetlinkChannel.exchange`` compares them with the last answer, and a match (with the
service's own fields unchanged) gives back the last read's record without decoding anything. Any
difference in the answer (a weight, a threshold, a counter moved by traffic) decodes it afresh;
buffers of the service dump are likewise memoised by their bytes. A read that breaks off drains the
socket, so nothing it left can pass for a later answer under a reused sequence number.
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
_R = TypeVar("_R")
_KeyedService = tuple[tuple[Any, ...], VirtualService | None]  # a service by the fields it came from
_SEQUENCE = struct.Struct("=I")
_DONE = struct.Struct("=IHHIIi")  # nlmsghdr and the dump's status
_SEQUENCE_AT = 8  # in struct nlmsghdr: length u32, type u16, flags u16, then the sequence number
THREAD_THRESHOLD = 64  # more requests (or a full read) than this run in a worker thread
_NETLINK_GENERIC = 16


class _DestDump:
    """One service's destination dump as the last read saw it: the request (with a sequence number of its
    own, kept: the same table then answers the same bytes), those bytes when they were one buffer and a
    lone NLMSG_DONE (or a lone NLMSG_DONE), and the record they gave."""

    __slots__ = ("answer", "before", "dests", "done", "fields", "key", "message", "record", "seen")

    def __init__(self, key: ServiceKey, message: bytes) -> None:
        self.key = key
        self.message = message
        self.seen: dict[tuple[Any, ...], DestValues] = {}  # its destinations' model values, by wire fields
        self.before: dict[tuple[Any, ...], DestValues] = {}  # those of the decoding before, while decoding
        self.answer = b""  # empty: never equal to a received buffer, so the first exchange decodes
        self.done = b""
        self.dests: list[DecodedDest] = []
        self.fields: tuple[Any, ...] | None = None
        self.record: ServiceRecord | None = None

    def remember(self, fields: tuple[Any, ...], service: VirtualService) -> ServiceRecord:
        """The record of ``service`` (of those ``fields``) and the destinations just decoded: the last one
        when the settings and the very real server objects are the same (the memo keeps those alive)."""
        record = self.record
        dests = self.dests
        if record is None or fields != self.fields or not _same_objects(record[0].reals, dests):
            record = (with_reals(service, dests), dests)
        elif record[1] is not dests:
            record = (record[0], dests)
        self.fields, self.record = fields, record
        return record


def _same_objects(reals: Sequence[object], dests: Sequence[DecodedDest]) -> bool:
    return len(reals) == len(dests) and all(real is dest[0] for real, dest in zip(reals, dests, strict=True))


class LeanTransport:
    """IPVS over a raw generic-netlink socket (see the module docstring)."""

    def __init__(self, descriptor: int, *, family_id: int) -> None:
        self._channel = NetlinkChannel(descriptor, protocol=_NETLINK_GENERIC, target="IPVS")
        self._family_id = family_id
        self._decode_service = service_decoder()
        self._decode_dest = dest_decoder()
        self._services_seen: Memo[tuple[Any, ...], VirtualService] = Memo()
        self._pages_seen: Memo[bytes, list[_KeyedService]] = Memo()
        self._service_dump: bytes | None = None
        self._dumps: dict[ServiceKey, _DestDump] = {}

    async def read(self, only: Sequence[ServiceKey] | None) -> list[ServiceRecord]:
        """Dump (or get, batched) the services, then dump each one's destinations."""
        if only is not None and len(only) <= THREAD_THRESHOLD:
            return self._read(only)
        return await asyncio.to_thread(self._read, only)

    async def service_keys(self) -> list[ServiceKey]:
        """One service dump, decoded as a full read decodes it (and memoised with it), no destinations."""
        return await asyncio.to_thread(self._guarded, self._service_keys)

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
        return self._guarded(self._read_all) if only is None else self._guarded(lambda: self._read_some(only))

    def _guarded(self, read: Callable[[], _R]) -> _R:
        try:
            return read()
        except BaseException:
            self._channel.drain()  # an exchange broke off: its leftovers must not answer a later one
            raise

    def _services(self) -> list[_KeyedService]:
        """One service dump (its message kept: an unchanged table answers the same bytes)."""
        if self._service_dump is None:
            self._service_dump = self._message(service_dump_request(), dump=True, seq=self._channel.sequences(1))
        return self._dump(self._service_dump, batch=self._service_batch, one=self._service_one, key=None)

    def _service_keys(self) -> list[ServiceKey]:
        return [service.key for _, service in self._services() if service is not None]

    def _read_all(self) -> list[ServiceRecord]:
        """Every service and its destinations; entries of services gone from the table are dropped."""
        for memo in (self._services_seen, self._pages_seen):
            memo.next_generation()
        answers = self._services()
        known, self._dumps = self._dumps, {}
        return self._records(answers, known)

    def _read_some(self, keys: Sequence[ServiceKey]) -> list[ServiceRecord]:
        """The services of ``keys`` that exist (a batched GET each) and their destinations."""
        return self._records([self._keyed(attributes) for attributes in self._get_services(keys)], self._dumps)

    def _records(self, answers: Sequence[_KeyedService], known: dict[ServiceKey, _DestDump]) -> list[ServiceRecord]:
        """Each answered service with its destinations (one dump each), kept in ``self._dumps``.

        The hot loop of a resync: a service whose destination dump answers exactly the bytes of the last
        read, and whose own fields are the same, is the very record of the last read, with no decoding.
        """
        dumps = self._dumps
        exchange = self._channel.exchange
        records: list[ServiceRecord] = []
        for fields, service in answers:
            if service is None:
                continue  # a protocol or family the model cannot hold: not ours to touch
            key = service.key
            entry = known.get(key)
            if entry is None:
                entry = _DestDump(key, self._message(dest_dump_request(key), dump=True, seq=self._channel.sequences(1)))
            dumps[key] = entry
            received = exchange(entry.message, entry.answer, entry.done)
            record = entry.record
            if received is None and record is not None and fields == entry.fields:
                records.append(record)
                continue
            if received is not None:
                entry.before, entry.seen = entry.seen, {}  # the memo of this decoding; only its values are kept
                entry.dests = self._dump(
                    entry.message, batch=self._dest_batch, one=self._dest_one, key=entry, received=received, entry=entry
                )
                entry.before = {}
            records.append(entry.remember(fields, service))
        return records

    def _dest_batch(self, data: memoryview, seq: int, entry: _DestDump) -> list[DecodedDest] | None:
        return self._decode_dest.many_dests(
            data, message_type=self._family_id, seq=seq, key=entry.key, memo=entry.before, into=entry.seen
        )

    def _dest_one(self, payload: Buffer, entry: _DestDump) -> DecodedDest:
        return decode_dest(self._decode_dest(payload), key=entry.key)

    def _service_batch(self, data: memoryview, seq: int, _key: None) -> list[_KeyedService] | None:
        # The service dump keeps its sequence number, so a buffer of unchanged services is the same bytes.
        page = bytes(data)
        known = self._pages_seen.get(page)
        if known is not None:
            return known
        decoded = self._decode_service.many_keyed(
            data, message_type=self._family_id, seq=seq, memo=self._services_seen, decode=decode_service
        )
        if decoded is not None:
            self._pages_seen.put(page, decoded)
        return decoded

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

    def _message(self, request: Request, *, dump: bool, seq: int) -> bytes:
        """A request's message."""
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
        return encode_request(request, family_id=self._family_id, flags=flags, seq=seq)

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
        received: Sequence[bytearray] = (),
        entry: _DestDump | None = None,
    ) -> list[_T]:
        """The decoded answers of one dump request, up to its NLMSG_DONE.

        The request is sent unless ``received`` holds the first buffers of its answer already
        (``NetlinkChannel.exchange``). Each buffer is first offered to ``batch`` (every reply at once,
        ``LayoutDecoder``); if it declines, the buffer is taken reply by reply with ``one``; both get ``key``
        (bound methods, not closures: a closure per service cost more than its decoding under the lab's
        emulation). With ``entry``, an answer of one buffer and a lone NLMSG_DONE (or a lone NLMSG_DONE) is
        remembered there for the next ``exchange``.
        """
        channel = self._channel
        (sequence,) = _SEQUENCE.unpack_from(message, _SEQUENCE_AT)
        if not received:
            channel.send(message)
        if entry is not None:
            entry.answer = entry.done = b""  # until this answer is known whole: never equal to a buffer
        pending = list(received)
        first = b""  # the answer's first buffer, kept while the answer may be remembered
        count = 0
        answers: list[_T] = []
        while True:
            data = memoryview(pending.pop(0)) if pending else channel.receive()
            count += 1
            if entry is not None and count == 1:
                first = bytes(data)
            if len(data) == _DONE.size:  # the usual last buffer, a lone NLMSG_DONE: checked in one unpack
                length, kind, _, seq, _, status = _DONE.unpack_from(data)
                if (length, kind, seq, status) == (_DONE.size, NLMSG_DONE, sequence, 0):
                    if entry is not None and count <= 2:
                        entry.answer, entry.done = first, (bytes(data) if count == 2 else b"")
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
