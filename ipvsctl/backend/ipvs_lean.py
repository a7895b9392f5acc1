"""The lean IPVS transport: a raw generic-netlink socket, ``ipvs_wire``'s codec, batched requests.

Why it is fast (issue 6; pyroute2 spends 15-30x ``ipvsadm``'s time encoding and decoding):

- Requests are encoded straight to bytes and sent up to ``BATCH`` per ``sendmsg``. The kernel handles
  every message of a ``sendmsg`` in order, before the call returns. Only the last message of a batch
  asks for an acknowledgement: a request that succeeds without one sends nothing back, one that fails
  always sends its error. So a batch costs one ``sendmsg`` and one ``recv`` plus one per failure, and
  the acknowledgement of the last message says every error of the batch has arrived (replies keep
  their order). Errors are matched to requests by sequence number.
- ``NETLINK_CAP_ACK`` keeps error messages to their headers, and the receive buffer is raised so the
  errors of a whole batch always fit (a full buffer drops messages: ENOBUFS).
- Answers are decoded from one reused buffer, by layouts learnt from the first reply of each length
  (``ipvs_layout``): one ``struct`` call per reply.

Dumps cannot be pipelined on one socket (a second dump while one runs is EBUSY), so the destinations
of each service cost one request and two ``recv`` calls, as they do for ``ipvsadm``. Large reads and
batches run in a worker thread, so the event loop is not held while thousands of messages go by;
the socket is blocking (the kernel answers within the calls) with a timeout against the unexpected.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from collections.abc import Iterator, Sequence

from ipvsctl.backend.ipvs_layout import dest_decoder, service_decoder
from ipvsctl.backend.ipvs_transport import Attributes, KernelRefusalError, ServiceRecord
from ipvsctl.backend.ipvs_wire import (
    NLMSG_DONE,
    NLMSG_ERROR,
    Reply,
    WireFormatError,
    encode_request,
    iter_replies,
)
from ipvsctl.backend.netlink_codec import (
    Request,
    decode_service,
    dest_dump_request,
    service_dump_request,
    service_get_request,
)
from ipvsctl.errors import BackendError
from ipvsctl.model import ServiceKey

__all__ = ["BATCH", "LeanTransport"]

BATCH = 256  # requests per sendmsg: the errors of a whole batch fit the receive buffer many times over
THREAD_THRESHOLD = 64  # more requests (or a full read) than this run in a worker thread
RECEIVE_BUFFER = 8 << 20
SEND_BUFFER = 1 << 20
TIMEOUT_SECONDS = 30.0

_NLM_F_REQUEST = 0x1
_NLM_F_ACK = 0x4
_NLM_F_DUMP = 0x300
_SOL_NETLINK = 270
_NETLINK_CAP_ACK = 10
_SO_RCVBUFFORCE = 33
_SO_SNDBUFFORCE = 32
_MAX_SEQUENCE = 2**32 - 1


class LeanTransport:
    """IPVS over a raw generic-netlink socket (see the module docstring)."""

    def __init__(self, descriptor: int, *, family_id: int) -> None:
        self._socket = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 16, fileno=descriptor)
        self._family_id = family_id
        self._next_sequence = 1
        self._buffer = bytearray(1 << 17)
        self._decode_service = service_decoder()
        self._decode_dest = dest_decoder()
        self._socket.settimeout(TIMEOUT_SECONDS)
        self._socket.bind((0, 0))
        _raise_buffer(self._socket, socket.SO_RCVBUF, _SO_RCVBUFFORCE, RECEIVE_BUFFER)
        _raise_buffer(self._socket, socket.SO_SNDBUF, _SO_SNDBUFFORCE, SEND_BUFFER)
        with contextlib.suppress(OSError):  # older kernels echo the request in errors: the buffer still holds them
            self._socket.setsockopt(_SOL_NETLINK, _NETLINK_CAP_ACK, 1)

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
        self._socket.close()

    # --- blocking work ----------------------------------------------------------------------------------

    def _read(self, only: Sequence[ServiceKey] | None) -> list[ServiceRecord]:
        if only is None:
            answers = [self._decode_service(reply.payload) for reply in self._dump(service_dump_request())]
        else:
            answers = self._get_services(only)
        records: list[ServiceRecord] = []
        for attributes in answers:
            service = decode_service(attributes)
            if service is None:
                continue
            dests = [self._decode_dest(reply.payload) for reply in self._dump(dest_dump_request(service.key))]
            records.append((service, dests))
        return records

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
        """Send requests in one sendmsg, the last asking for an ack; yield (request index, answer) up to it.

        Answers are the replies of requests that have one (GET) and the errors of failed requests.
        """
        if not requests:
            return
        first = self._sequences(len(requests))
        last = len(requests) - 1
        self._send(
            b"".join(
                encode_request(
                    request,
                    family_id=self._family_id,
                    flags=_NLM_F_REQUEST | (_NLM_F_ACK if index == last else 0),
                    seq=first + index,
                )
                for index, request in enumerate(requests)
            )
        )
        while True:
            for reply in self._receive():
                index = reply.seq - first
                if not 0 <= index <= last:
                    continue  # a late answer to an earlier, abandoned exchange
                if reply.type == NLMSG_ERROR and index == last:
                    if reply.error:
                        yield index, reply
                    return
                if reply.type != NLMSG_ERROR or reply.error:
                    yield index, reply

    def _dump(self, request: Request) -> Iterator[Reply]:
        """The answers of one dump request, up to its NLMSG_DONE."""
        sequence = self._sequences(1)
        self._send(encode_request(request, family_id=self._family_id, flags=_NLM_F_REQUEST | _NLM_F_DUMP, seq=sequence))
        while True:
            for reply in self._receive():
                if reply.seq != sequence:
                    continue
                if reply.type == NLMSG_DONE:
                    if reply.error:  # the dump broke off part-way: a shorter answer would pass for the whole
                        raise KernelRefusalError(reply.error)
                    return
                if reply.type == NLMSG_ERROR:
                    raise KernelRefusalError(reply.error or errno.EPROTO)
                yield reply

    def _sequences(self, count: int) -> int:
        """The first of ``count`` fresh sequence numbers (a u32: they wrap, skipping 0)."""
        if self._next_sequence + count > _MAX_SEQUENCE:
            self._next_sequence = 1
        first = self._next_sequence
        self._next_sequence += count
        return first

    def _send(self, data: bytes) -> None:
        try:
            self._socket.send(data)
        except OSError as error:
            raise _socket_error(error, "send") from None

    def _receive(self) -> Iterator[Reply]:
        try:
            size = self._socket.recv_into(self._buffer, 0, socket.MSG_TRUNC)
        except OSError as error:
            raise _socket_error(error, "receive") from None
        if size > len(self._buffer):  # a message longer than the buffer: grow it, the rest is lost
            self._buffer = bytearray(size)
            raise BackendError("netlink answer larger than the receive buffer", target="IPVS", errno=errno.EMSGSIZE)
        try:
            yield from iter_replies(memoryview(self._buffer)[:size])
        except WireFormatError as error:
            raise BackendError(str(error), target="IPVS", errno=errno.EPROTO) from None


def _raise_buffer(sock: socket.socket, option: int, forced: int, size: int) -> None:
    """Raise a socket buffer to ``size``: past the system limit when allowed (CAP_NET_ADMIN), else to it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, forced, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, option, size)


def _socket_error(error: OSError, what: str) -> BackendError:
    if isinstance(error, TimeoutError):
        return BackendError(f"no answer from IPVS within {TIMEOUT_SECONDS:g} s ({what})", target="IPVS")
    code = error.errno or 0
    return BackendError(f"{what}: {os.strerror(code) if code else error}", target="IPVS", errno=code)
