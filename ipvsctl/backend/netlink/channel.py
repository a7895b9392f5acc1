"""A raw netlink socket that sends requests in batches and reads dumps: what every lean path shares.

The kernel handles every message of one ``sendmsg`` in order before the call returns. A request sent
without ``NLM_F_ACK`` answers nothing when it succeeds and always answers its error when it fails; so a
batch asks for an acknowledgement only on its last message, and that acknowledgement says every answer
of the batch has arrived (answers keep their order; sequence numbers match them to requests). A batch
of N requests costs one ``sendmsg`` and one ``recv``, plus one per failure or reply.

``NETLINK_CAP_ACK`` keeps error messages to their headers and the receive buffer is raised so the
answers of a whole batch always fit (a full buffer drops messages: ENOBUFS). The socket is blocking (the
kernel answers within the calls), with a timeout against the unexpected, kept by the kernel
(``SO_RCVTIMEO``/``SO_SNDTIMEO``: a Python socket timeout would ``poll`` before every call, doubling
the system calls of a read); callers run large work in a
worker thread (``blocking``). Socket failures are BackendErrors; bytes that are not netlink messages raise
``WireFormatError`` and a refused request or broken-off dump ``KernelRefusalError``, for the backend to
name. Not safe for concurrent use.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from ipvsctl.backend.netlink.message import (
    DONE,
    NLM_F_ACK,
    NLMSG_DONE,
    NLMSG_ERROR,
    Buffer,
    KernelRefusalError,
    Reply,
    iter_replies,
    sequence_of,
)
from ipvsctl.errors import BackendError

__all__ = ["BATCH", "THREAD_THRESHOLD", "Encoder", "NetlinkChannel", "blocking"]

BATCH = 256  # requests per sendmsg: the answers of a whole batch fit the receive buffer many times over
THREAD_THRESHOLD = 64  # blocking work of more messages than this runs in a worker thread
RECEIVE_BUFFER = 8 << 20
SEND_BUFFER = 1 << 20
TIMEOUT_SECONDS = 30.0

_SOL_NETLINK = 270
_NETLINK_CAP_ACK = 10
_SO_RCVBUFFORCE = 33
_SO_SNDBUFFORCE = 32
_MAX_SEQUENCE = 2**32 - 1
_SEND_SLACK = 32  # netlink_sendmsg refuses a message longer than the send buffer less this

_T = TypeVar("_T")
_C = TypeVar("_C")

Encoder = Callable[[int, int, int], bytes]
"""Encodes request ``index`` with a sequence number and the extra flags (NLM_F_ACK on the last)."""


async def blocking(action: Callable[[], _T], *, size: int) -> _T:
    """Run a blocking channel call of ``size`` messages: in a worker thread when it is large, so the event
    loop is not held while thousands of messages go by (a thread costs more than a few messages)."""
    if size > THREAD_THRESHOLD:
        return await asyncio.to_thread(action)
    return action()


class NetlinkChannel:
    """One netlink socket: batched requests, dumps, fresh sequence numbers."""

    def __init__(self, descriptor: int, *, protocol: int, target: str) -> None:
        """Over the netlink socket ``descriptor``, which it owns from now on: ``close`` closes it, and so does
        a failure to set the channel up."""
        try:
            self._socket = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, protocol, fileno=descriptor)
        except BaseException:
            os.close(descriptor)
            raise
        self._target = target
        self._next_sequence = 1
        self._buffer = bytearray(1 << 17)  # a dump's message is at most 32 KiB
        try:
            _set_timeouts(self._socket)
            self._socket.bind((0, 0))
            _raise_buffer(self._socket, socket.SO_RCVBUF, _SO_RCVBUFFORCE, RECEIVE_BUFFER)
            _raise_buffer(self._socket, socket.SO_SNDBUF, _SO_SNDBUFFORCE, SEND_BUFFER)
            self._send_room = self._room()
            with contextlib.suppress(OSError):  # older kernels echo the request in errors: the buffer holds them
                self._socket.setsockopt(_SOL_NETLINK, _NETLINK_CAP_ACK, 1)
        except BaseException:
            self._socket.close()
            raise

    def close(self) -> None:
        """Close the socket."""
        self._socket.close()

    def batch(self, count: int, encode: Encoder) -> Iterator[tuple[int, Reply]]:
        """Send ``count`` requests in one sendmsg, the last asking for an ack; yield (index, answer) up to it.

        Answers are the replies of requests that have one (GET) and the errors of failed requests. A
        reply's payload is valid until the next answer is asked for.
        """
        if not count:
            return
        first = self.sequences(count)
        last = count - 1
        self.send(b"".join(encode(index, first + index, NLM_F_ACK if index == last else 0) for index in range(count)))
        while True:
            for reply in iter_replies(self.receive()):
                index = reply.seq - first
                if not 0 <= index <= last:
                    continue  # a late answer to an earlier, abandoned exchange
                if reply.type == NLMSG_ERROR and index == last:
                    if reply.error:
                        yield index, reply
                    return
                if reply.type != NLMSG_ERROR or reply.error:
                    yield index, reply

    def request(self, encode: Encoder, decode: Callable[[Reply], _T]) -> list[_T]:
        """One request, acknowledged: ``decode`` of each reply; KernelRefusalError when the kernel refuses it."""
        answers: list[_T] = []
        for _, reply in self.batch(1, encode):
            if reply.type == NLMSG_ERROR:
                raise KernelRefusalError(reply.error or errno.EPROTO)
            answers.append(decode(reply))
        return answers

    def dump(
        self,
        message: bytes,
        *,
        one: Callable[[Buffer, _C], _T | None],
        many: Callable[[memoryview, int, _C], list[_T] | None] | None = None,
        context: _C,
        received: Sequence[bytes | bytearray] = (),
        keep: int = 0,
    ) -> tuple[list[_T], tuple[bytes | bytearray, ...] | None]:
        """The decoded replies of one dump request, up to its NLMSG_DONE; and, when the whole answer came in at
        most ``keep`` buffers, those buffers (copies: the same request may be compared with them later).

        ``message`` is sent unless ``received`` holds the first buffers of its answer already. Each buffer
        is first offered to ``many`` (every reply at once; None declines); else each reply's payload goes to
        ``one`` (None leaves it out). Both get ``context``: bound methods and a value, not a closure per
        dump, which under the lab's emulation cost more than decoding a small answer. A dump that breaks
        off (NLMSG_DONE with an error) or is refused raises KernelRefusalError.
        """
        sequence = sequence_of(message)
        if not received:
            self.send(message)
        pending = list(received)
        kept: list[bytes | bytearray] | None = [] if keep else None
        values: list[_T] = []
        while True:
            raw: Buffer = pending.pop(0) if pending else self.receive()
            data = memoryview(raw)
            if kept is not None:
                kept.append(bytes(raw) if isinstance(raw, memoryview) else raw)
                if len(kept) > keep:
                    kept = None
            if len(data) == DONE.size:  # the usual last buffer, a lone NLMSG_DONE: checked in one unpack
                length, kind, _, seq, _, status = DONE.unpack_from(data)
                if (length, kind, seq, status) == (DONE.size, NLMSG_DONE, sequence, 0):
                    return values, None if kept is None else tuple(kept)
            if many is not None:
                decoded = many(data, sequence, context)
                if decoded is not None:
                    values.extend(decoded)
                    continue
            for reply in iter_replies(data):
                if reply.seq != sequence:
                    continue  # a late answer to an earlier, abandoned exchange
                if reply.type == NLMSG_DONE:
                    if reply.error:  # the dump broke off part-way: a shorter answer would pass for the whole
                        raise KernelRefusalError(reply.error)
                    return values, None if kept is None else tuple(kept)
                if reply.type == NLMSG_ERROR:
                    raise KernelRefusalError(reply.error or errno.EPROTO)
                value = one(reply.payload, context)
                if value is not None:
                    values.append(value)

    def sequences(self, count: int) -> int:
        """The first of ``count`` fresh sequence numbers (a u32: they wrap, skipping 0)."""
        if self._next_sequence + count > _MAX_SEQUENCE:
            self._next_sequence = 1
        first = self._next_sequence
        self._next_sequence += count
        return first

    def send(self, data: bytes) -> None:
        """Send one buffer of messages, the send buffer first raised to hold it when it is larger.

        The kernel takes one ``sendmsg`` only if it fits the socket's send buffer (else EMSGSIZE), and an
        nf_tables transaction must be one ``sendmsg``: a table's 50,000 elements are about 2 MiB.
        """
        try:
            if len(data) > self._send_room:
                _raise_buffer(self._socket, socket.SO_SNDBUF, _SO_SNDBUFFORCE, len(data) + _SEND_SLACK)
                self._send_room = self._room()
            self._socket.send(data)
        except OSError as error:
            raise self._error(error, "send") from error

    def _room(self) -> int:
        """The largest ``sendmsg`` the socket takes now (the kernel keeps 32 bytes of the buffer back)."""
        return int(self._socket.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)) - _SEND_SLACK

    def receive(self) -> memoryview:
        """One message buffer from the socket (valid until the next receive)."""
        return memoryview(self._buffer)[: self._receive()]

    def exchange(self, message: bytes, expected: Sequence[Buffer]) -> list[bytearray] | None:
        """Send a request and receive its answer for as long as it is ``expected``, buffer for buffer.

        None when the answer is ``expected`` whole: the same request, sequence number included, gets the
        same bytes from the same kernel state. Otherwise the buffers received so far (copies), the last the
        first that differs, for the caller to decode and to go on receiving after (``dump``'s ``received``);
        with nothing expected, the first buffer. Keeps nothing: what to expect is the caller's to remember.
        One call with the socket calls inline: the agent's resync makes one per service.
        """
        sock = self._socket
        buffer = self._buffer
        received: list[bytearray] = []
        try:
            sock.send(message)
            for last in expected:
                size = sock.recv_into(buffer, 0, socket.MSG_TRUNC)
                copy = buffer[:size]
                received.append(copy)
                if copy != last:
                    self._check_size(size)
                    return received
            if not expected:
                size = sock.recv_into(buffer, 0, socket.MSG_TRUNC)
                self._check_size(size)
                return [buffer[:size]]
        except OSError as error:
            raise self._error(error, "exchange") from error
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
            raise self._error(error, "drain") from error
        finally:
            sock.setblocking(True)  # blocking again; the kernel's timeouts stay set

    def _receive(self) -> int:
        """Receive one buffer into ``self._buffer``; its size."""
        try:
            size: int = self._socket.recv_into(self._buffer, 0, socket.MSG_TRUNC)
        except OSError as error:
            raise self._error(error, "receive") from error
        self._check_size(size)
        return size

    def _check_size(self, size: int) -> None:
        if size > len(self._buffer):  # a message longer than the buffer: grow it, the rest is lost
            self._buffer = bytearray(size)
            raise BackendError(
                "netlink answer larger than the receive buffer", target=self._target, errno=errno.EMSGSIZE
            )

    def _error(self, error: OSError, what: str) -> BackendError:
        if isinstance(error, (TimeoutError, BlockingIOError)):  # EAGAIN of a blocking socket: SO_*TIMEO ran out
            return BackendError(f"no answer within {TIMEOUT_SECONDS:g} s ({what})", target=self._target)
        code = error.errno or 0
        return BackendError(f"{what}: {os.strerror(code) if code else error}", target=self._target, errno=code)


def _set_timeouts(sock: socket.socket) -> None:
    """A blocking socket whose calls give up after ``TIMEOUT_SECONDS`` (EAGAIN), with no ``poll`` before each."""
    sock.setblocking(True)
    seconds = int(TIMEOUT_SECONDS)
    timeval = struct.pack("@ll", seconds, int((TIMEOUT_SECONDS - seconds) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def _raise_buffer(sock: socket.socket, option: int, forced: int, size: int) -> None:
    """Raise a socket buffer to ``size``: past the system limit when allowed (CAP_NET_ADMIN), else to it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, forced, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, option, size)
