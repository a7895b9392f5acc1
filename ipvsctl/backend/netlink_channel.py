"""A raw netlink socket that sends requests in batches: what the lean IPVS and address paths share.

The kernel handles every message of one ``sendmsg`` in order before the call returns. A request sent
without ``NLM_F_ACK`` answers nothing when it succeeds and always answers its error when it fails; so a
batch asks for an acknowledgement only on its last message, and that acknowledgement says every answer
of the batch has arrived (answers keep their order; sequence numbers match them to requests). A batch
of N requests costs one ``sendmsg`` and one ``recv``, plus one per failure or reply.

``NETLINK_CAP_ACK`` keeps error messages to their headers and the receive buffer is raised so the
answers of a whole batch always fit (a full buffer drops messages: ENOBUFS). The socket is blocking (the
kernel answers within the calls), with a timeout against the unexpected. Not safe for concurrent use.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Callable, Iterator

from ipvsctl.backend.ipvs_wire import (
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    Reply,
    WireFormatError,
    iter_replies,
)
from ipvsctl.errors import BackendError

__all__ = ["BATCH", "NLM_F_ACK", "NLM_F_DUMP", "NLM_F_REQUEST", "Encoder", "NetlinkChannel"]

BATCH = 256  # requests per sendmsg: the answers of a whole batch fit the receive buffer many times over
RECEIVE_BUFFER = 8 << 20
SEND_BUFFER = 1 << 20
TIMEOUT_SECONDS = 30.0

_SOL_NETLINK = 270
_NETLINK_CAP_ACK = 10
_SO_RCVBUFFORCE = 33
_SO_SNDBUFFORCE = 32
_MAX_SEQUENCE = 2**32 - 1

Encoder = Callable[[int, int, int], bytes]
"""Encodes request ``index`` with a sequence number and the extra flags (NLM_F_ACK on the last)."""


class NetlinkChannel:
    """One netlink socket: batched requests, dumps' buffers, fresh sequence numbers."""

    def __init__(self, descriptor: int, *, protocol: int, target: str) -> None:
        self._socket = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, protocol, fileno=descriptor)
        self._target = target
        self._next_sequence = 1
        self._buffer = bytearray(1 << 17)  # a dump's message is at most 32 KiB
        self._socket.settimeout(TIMEOUT_SECONDS)
        self._socket.bind((0, 0))
        _raise_buffer(self._socket, socket.SO_RCVBUF, _SO_RCVBUFFORCE, RECEIVE_BUFFER)
        _raise_buffer(self._socket, socket.SO_SNDBUF, _SO_SNDBUFFORCE, SEND_BUFFER)
        with contextlib.suppress(OSError):  # older kernels echo the request in errors: the buffer still holds them
            self._socket.setsockopt(_SOL_NETLINK, _NETLINK_CAP_ACK, 1)

    def close(self) -> None:
        """Close the socket."""
        self._socket.close()

    def batch(self, count: int, encode: Encoder) -> Iterator[tuple[int, Reply]]:
        """Send ``count`` requests in one sendmsg, the last asking for an ack; yield (index, answer) up to it.

        Answers are the replies of requests that have one (GET) and the errors of failed requests.
        """
        if not count:
            return
        first = self.sequences(count)
        last = count - 1
        self.send(b"".join(encode(index, first + index, NLM_F_ACK if index == last else 0) for index in range(count)))
        while True:
            for reply in self.replies(self.receive()):
                index = reply.seq - first
                if not 0 <= index <= last:
                    continue  # a late answer to an earlier, abandoned exchange
                if reply.type == NLMSG_ERROR and index == last:
                    if reply.error:
                        yield index, reply
                    return
                if reply.type != NLMSG_ERROR or reply.error:
                    yield index, reply

    def sequences(self, count: int) -> int:
        """The first of ``count`` fresh sequence numbers (a u32: they wrap, skipping 0)."""
        if self._next_sequence + count > _MAX_SEQUENCE:
            self._next_sequence = 1
        first = self._next_sequence
        self._next_sequence += count
        return first

    def send(self, data: bytes) -> None:
        """Send one buffer of messages."""
        try:
            self._socket.send(data)
        except OSError as error:
            raise self._error(error, "send") from None

    def receive(self) -> memoryview:
        """One message buffer from the socket (valid until the next receive)."""
        try:
            size = self._socket.recv_into(self._buffer, 0, socket.MSG_TRUNC)
        except OSError as error:
            raise self._error(error, "receive") from None
        self._check_size(size)
        return memoryview(self._buffer)[:size]

    def exchange(self, message: bytes, answer: bytes, done: bytes) -> list[bytearray] | None:
        """Send a dump request whose answer was ``answer`` (then ``done``, unless empty) the last time.

        None when the answer is those buffers again, byte for byte: nothing to decode. Otherwise the
        buffers received so far (copies), for the caller to decode and to go on receiving after. A
        request sent again with the same sequence number gets the same bytes for the same table.
        """
        sock = self._socket
        buffer = self._buffer
        try:
            sock.send(message)
            size = sock.recv_into(buffer, 0, socket.MSG_TRUNC)
            first = buffer[:size]
            if first != answer:
                self._check_size(size)
                return [first]
            if not done:
                return None
            size = sock.recv_into(buffer, 0, socket.MSG_TRUNC)
            second = buffer[:size]
        except OSError as error:
            raise self._error(error, "exchange") from None
        if second != done:
            self._check_size(size)
            return [first, second]
        return None

    def drain(self, *, limit: int = 1 << 20) -> None:
        """Read and drop whatever an abandoned exchange left on the socket (finishing a dump it left
        running: each receive makes the kernel write its next part), so no later exchange mistakes it
        for its own answer. Bounded by ``limit`` buffers."""
        sock = self._socket
        try:
            sock.setblocking(False)
            for _ in range(limit):
                sock.recv_into(self._buffer, 0, socket.MSG_TRUNC)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as error:
            raise self._error(error, "drain") from None
        finally:
            sock.settimeout(TIMEOUT_SECONDS)

    def _check_size(self, size: int) -> None:
        if size > len(self._buffer):  # a message longer than the buffer: grow it, the rest is lost
            self._buffer = bytearray(size)
            raise BackendError(
                "netlink answer larger than the receive buffer", target=self._target, errno=errno.EMSGSIZE
            )

    def replies(self, data: memoryview) -> Iterator[Reply]:
        """The messages of a buffer; a corrupt one is a BackendError."""
        try:
            yield from iter_replies(data)
        except WireFormatError as error:
            raise BackendError(str(error), target=self._target, errno=errno.EPROTO) from None

    def _error(self, error: OSError, what: str) -> BackendError:
        if isinstance(error, TimeoutError):
            return BackendError(f"no answer within {TIMEOUT_SECONDS:g} s ({what})", target=self._target)
        code = error.errno or 0
        return BackendError(f"{what}: {os.strerror(code) if code else error}", target=self._target, errno=code)


def _raise_buffer(sock: socket.socket, option: int, forced: int, size: int) -> None:
    """Raise a socket buffer to ``size``: past the system limit when allowed (CAP_NET_ADMIN), else to it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, forced, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, option, size)
