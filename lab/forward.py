#!/usr/bin/env python3
"""QEMU guestfwd helper: one guest connection on stdin/stdout, copied to and from 127.0.0.1:PORT on the host.

lab/run.py --forward PORT makes QEMU run this once per connection the guest opens to 10.0.2.100:PORT. QEMU
hands it the connection as a socket on file descriptors 0, 1 and 2, so nothing may be written to stderr: it
would reach the guest. When the host port does not answer, the guest's connection is simply closed.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading

CONNECT_TIMEOUT = 5.0
CHUNK = 65536
CLOSE_GRACE = 10.0


def pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until `source` reaches its end, then end `sink`'s sending side."""
    with contextlib.suppress(OSError):
        while data := source.recv(CHUNK):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def main(argv: list[str]) -> int:
    """Bridge the guest's connection (fd 0) to 127.0.0.1:PORT; return 1 when the port is unusable."""
    if len(argv) != 1 or not argv[0].isascii() or not argv[0].isdigit() or not 0 < int(argv[0]) < 65536:
        return 1
    guest = socket.socket(fileno=0)
    try:
        host = socket.create_connection(("127.0.0.1", int(argv[0])), timeout=CONNECT_TIMEOUT)
    except OSError:
        guest.close()
        return 1
    host.settimeout(None)
    upstream = threading.Thread(target=pump, args=(guest, host), daemon=True)
    upstream.start()
    pump(host, guest)
    upstream.join(timeout=CLOSE_GRACE)  # the host side ended: the guest gets a moment to end its side too
    host.close()
    guest.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
