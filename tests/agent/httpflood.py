"""A slowloris flood, run as its own process so that its sockets are not counted in the server's descriptors.

    python -m tests.agent.httpflood --hold N --churn M --rate R PORT...

opens N connections spread over the loopback PORTs, each sending an unfinished request head, prints
``held`` once they are all open, then opens M more at R per second (closing its oldest one for each: the
server keeps seeing new half-open connections; R 0: as fast as it can) and prints ``churned``; it closes
everything when stdin closes. Bounded in count by N and M, in time by the connect timeout and its caller's.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import resource
import socket
import sys
import time

PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: 192.0.2.1\r\nX-Slow: "
CONNECT_TIMEOUT = 2.0


def _open(port: int) -> socket.socket | None:
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT)
        sock.sendall(PARTIAL)
    except OSError:  # refused or reset: the server dropped it first, which is what it may do
        return None
    return sock


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hold", type=int, required=True)
    parser.add_argument("--churn", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("ports", type=int, nargs="+")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held: collections.deque[socket.socket] = collections.deque()
    for i in range(args.hold):
        sock = _open(args.ports[i % len(args.ports)])
        if sock is not None:
            held.append(sock)
    print("held", len(held), flush=True)
    started = time.monotonic()
    for i in range(args.churn):
        if args.rate:
            time.sleep(max(0.0, started + i / args.rate - time.monotonic()))
        sock = _open(args.ports[i % len(args.ports)])
        if sock is not None:
            held.append(sock)
        if len(held) > args.hold:
            held.popleft().close()
    print("churned", flush=True)
    sys.stdin.read()
    for sock in held:
        with contextlib.suppress(OSError):
            sock.close()


if __name__ == "__main__":
    main()
