"""Reading the IPVS table over the lean socket, and reading it again without decoding what did not change.

The one owner of what the lean transport remembers between reads. An unchanged table answers a dump with
the very same bytes when the request is the very same bytes, its sequence number included. So each service
keeps its destination-dump request from read to read (``DestDump``), with the answer it got (when that
came in at most two buffers, as it nearly always does: the replies, then a lone NLMSG_DONE) and the record
made of it. The next read sends the same request and compares the answer with the last one, byte for byte
(``NetlinkChannel.exchange``): a match, with the service's own fields unchanged, gives back the last record,
the very same objects, without decoding anything. Any difference in the answer (a weight, a threshold, a
counter moved by traffic) decodes it afresh, reusing the model values of destinations whose fields did
not change. Buffers of the service dump are memoised by their bytes likewise, and services by their
fields (``Memo``: two generations, so at most two tables' worth).

Dumps cannot be pipelined on one socket (a second dump while one runs is EBUSY), so the destinations
of each service cost one request and two ``recv`` calls, as they do for ``ipvsadm``. Answers that are
decoded go through the learnt layouts of ``layout``. A read that breaks off drains the socket, so nothing
it left can pass for a later answer under a reused sequence number.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from ipvsctl.backend.ipvs.codec import (
    DecodedDest,
    DestValues,
    Request,
    ServiceRecord,
    decode_dest,
    decode_service,
    dest_dump_request,
    record,
    service_dump_request,
    service_from_wire,
    service_get_request,
)
from ipvsctl.backend.ipvs.layout import dest_decoder, service_decoder
from ipvsctl.backend.ipvs.wire import KeyedRequests, batch_encoder, encode_request
from ipvsctl.backend.netlink.channel import BATCH, NetlinkChannel
from ipvsctl.backend.netlink.collector import collector_paused
from ipvsctl.backend.netlink.message import NLM_F_DUMP, NLM_F_REQUEST, Buffer, KernelRefusalError
from ipvsctl.model import ServiceKey, VirtualService

__all__ = ["DestDump", "Memo", "TableReader"]

_K = TypeVar("_K")
_V = TypeVar("_V")
_R = TypeVar("_R")
_Fields = tuple[Any, ...]
_KeyedService = tuple[_Fields, VirtualService | None]  # a service by the fields it came from
_KEPT_BUFFERS = 2  # an answer this short is remembered for the next read's comparison


class Memo(Generic[_K, _V]):
    """Values decoded by earlier reads, by the wire fields they came from: a read that finds them again
    reuses the model objects instead of building them again.

    Two generations bound it: ``next_generation`` (at every full read) drops whatever the previous full
    read did not see. The decoders look ``current`` then ``previous`` up inline (a method call per reply
    cost more than the look-up under emulation) and put what they find or make into ``current``.
    """

    __slots__ = ("current", "previous")

    def __init__(self) -> None:
        self.current: dict[_K, _V] = {}
        self.previous: dict[_K, _V] = {}

    def get(self, key: _K) -> _V | None:
        """The value memoised under ``key`` (kept into this generation), or None."""
        value = self.current.get(key)
        if value is None:
            value = self.previous.get(key)
            if value is not None:
                self.current[key] = value
        return value

    def put(self, key: _K, value: _V) -> None:
        """Memoise ``value`` under ``key``."""
        self.current[key] = value

    def next_generation(self) -> None:
        """Start a new generation: values not used since the last one are dropped at the next."""
        self.previous, self.current = self.current, {}

    def __len__(self) -> int:
        return len(self.current.keys() | self.previous.keys())


class DestDump:
    """One service's destination dump as the last read saw it: the request (with a sequence number of its
    own, kept: the same table then answers the same bytes), the answer's buffers when there were at most
    two, the record made of them, and its destinations' model values by their wire fields."""

    __slots__ = ("answer", "before", "dests", "fields", "key", "message", "record", "seen")

    def __init__(self, key: ServiceKey, message: bytes) -> None:
        self.key = key
        self.message = message
        self.answer: tuple[bytes | bytearray, ...] = ()  # nothing remembered: the next exchange decodes
        self.seen: dict[_Fields, DestValues] = {}  # model values of the last decoding, by wire fields
        self.before: dict[_Fields, DestValues] = {}  # those of the decoding before, while decoding
        self.dests: list[DecodedDest] = []
        self.fields: _Fields | None = None
        self.record: ServiceRecord | None = None

    def remember(self, fields: _Fields, service: VirtualService) -> ServiceRecord:
        """The record of ``service`` (of those ``fields``) and the destinations just decoded: the last one
        when the settings and the very real server objects are the same (the memo keeps those alive)."""
        last = self.record
        dests = self.dests
        if last is None or fields != self.fields or not _same_objects(last[0].reals, dests):
            last = record(service, dests)
        elif last[1] is not dests:
            last = (last[0], dests)
        self.fields, self.record = fields, last
        return last


def _same_objects(reals: Sequence[object], dests: Sequence[DecodedDest]) -> bool:
    return len(reals) == len(dests) and all(real is dest.real for real, dest in zip(reals, dests, strict=True))


class TableReader:
    """Reads of the IPVS table over one generic-netlink channel, remembering the last (blocking calls)."""

    def __init__(self, channel: NetlinkChannel, *, family_id: int) -> None:
        self._channel = channel
        self._family_id = family_id
        self._decode_service = service_decoder()
        self._decode_dest = dest_decoder()
        self._services_seen: Memo[_Fields, VirtualService] = Memo()
        self._pages_seen: Memo[bytes, list[_KeyedService]] = Memo()
        self._service_dump: bytes | None = None
        self._dumps: dict[ServiceKey, DestDump] = {}
        self._dest_dumps = KeyedRequests(dest_dump_request, family_id=family_id, flags=NLM_F_REQUEST | NLM_F_DUMP)

    def read_all(self) -> list[ServiceRecord]:
        """Every service and its destinations; what is remembered of services gone from the table is dropped."""
        return self._guarded(self._read_all)

    def read_some(self, keys: Sequence[ServiceKey]) -> list[ServiceRecord]:
        """The services of ``keys`` that exist (a batched GET each) and their destinations."""
        return self._guarded(lambda: self._records([self._keyed(fields) for fields in self._get(keys)], self._dumps))

    def service_keys(self) -> list[ServiceKey]:
        """One service dump, decoded as a full read decodes it (and memoised with it), no destinations."""
        return self._guarded(lambda: [service.key for _, service in self._services() if service is not None])

    def _guarded(self, read: Callable[[], _R]) -> _R:
        try:
            with collector_paused():  # the records live on: collections during the read only walk them again
                return read()
        except BaseException:
            self._channel.drain()  # an exchange broke off: its leftovers must not answer a later one
            raise

    def _read_all(self) -> list[ServiceRecord]:
        for memo in (self._services_seen, self._pages_seen):
            memo.next_generation()
        answers = self._services()
        known, self._dumps = self._dumps, {}
        return self._records(answers, known)

    def _services(self) -> list[_KeyedService]:
        """One service dump (its message kept: an unchanged table answers the same bytes)."""
        if self._service_dump is None:
            self._service_dump = self._message(service_dump_request(), dump=True)
        services, _ = self._channel.dump(
            self._service_dump, one=self._service_one, many=self._service_page, context=None
        )
        return services

    def _records(self, answers: Sequence[_KeyedService], known: dict[ServiceKey, DestDump]) -> list[ServiceRecord]:
        """Each answered service with its destinations (one dump each), remembered in ``self._dumps``.

        The hot loop of a resync: a service whose destination dump answers exactly the bytes of the last
        read, and whose own fields are the same, is the very record of the last read, with no decoding.
        """
        dumps = self._dumps
        exchange = self._channel.exchange
        sequences = self._channel.sequences
        dest_dump = self._dest_dumps.message
        records: list[ServiceRecord] = []
        for fields, service in answers:
            if service is None:
                continue  # a protocol or family the model cannot hold: not ours to touch
            key = service.key
            entry = known.get(key)
            if entry is None:
                entry = DestDump(key, dest_dump(key, seq=sequences(1)))
            dumps[key] = entry
            received = exchange(entry.message, entry.answer)
            last = entry.record
            if received is None and last is not None and fields == entry.fields:
                records.append(last)
                continue
            if received is not None:
                entry.answer = ()  # until this answer is known whole
                entry.before, entry.seen = entry.seen, {}  # the memo of this decoding; only its values are kept
                entry.dests, kept = self._channel.dump(
                    entry.message,
                    one=self._dest_one,
                    many=self._dest_page,
                    context=entry,
                    received=received,
                    keep=_KEPT_BUFFERS,
                )
                entry.answer = kept or ()
                entry.before = {}
            records.append(entry.remember(fields, service))
        return records

    def _dest_page(self, data: memoryview, seq: int, entry: DestDump) -> list[DecodedDest] | None:
        return self._decode_dest.many_dests(
            data, message_type=self._family_id, seq=seq, memo=entry.before, into=entry.seen
        )

    def _dest_one(self, payload: Buffer, entry: DestDump) -> DecodedDest:
        return decode_dest(self._decode_dest(payload), key=entry.key)

    def _service_page(self, data: memoryview, seq: int, _context: None) -> list[_KeyedService] | None:
        # The service dump keeps its sequence number, so a buffer of unchanged services is the same bytes.
        page = bytes(data)
        known = self._pages_seen.get(page)
        if known is not None:
            return known
        memo = self._services_seen
        decoded = self._decode_service.many_keyed(
            data,
            message_type=self._family_id,
            seq=seq,
            decode=decode_service,
            memo=memo.previous,
            into=memo.current,
            from_wire=service_from_wire,
        )
        if decoded is not None:
            self._pages_seen.put(page, decoded)
        return decoded

    def _service_one(self, payload: Buffer, _context: None) -> _KeyedService:
        return self._keyed(self._decode_service(payload))

    def _keyed(self, attributes: dict[str, object]) -> _KeyedService:
        """A service by its attributes (memoised under them)."""
        fields = tuple(attributes.items())
        service = self._services_seen.get(fields)
        if service is None:
            service = decode_service(attributes)
            if service is not None:
                self._services_seen.put(fields, service)
        return fields, service

    def _get(self, keys: Sequence[ServiceKey]) -> list[dict[str, object]]:
        """GET_SERVICE of every key, batched; keys without a service (ESRCH) are left out."""
        found: list[dict[str, object]] = []
        for start in range(0, len(keys), BATCH):
            requests = [service_get_request(key) for key in keys[start : start + BATCH]]
            for _, reply in self._channel.batch(len(requests), batch_encoder(requests, family_id=self._family_id)):
                if reply.error is None:
                    found.append(self._decode_service(reply.payload))
                elif reply.error != errno.ESRCH:
                    raise KernelRefusalError(reply.error)
        return found

    def _message(self, request: Request, *, dump: bool) -> bytes:
        """A request's message, with a sequence number of its own."""
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
        return encode_request(request, family_id=self._family_id, flags=flags, seq=self._channel.sequences(1))
