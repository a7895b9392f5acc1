"""A fresh IPVS read of the kernel lab, recorded once and replayed on the host: the read's Python measured
without the lab's noise.

Timings of a fresh ``TableReader.read_all`` in the lab vary by a quarter from run to run (the emulated CPU
shares the host), which hides a change of 10 %. So the bytes are taken from the lab once and the read's own
work is measured on the host, where callgrind counts its instructions exactly:

- ``capture FILE`` (in the lab): builds the table of ``bench.cluster`` at ``--services`` x 3 with
  ``ipvsadm -R``, reads it once with a fresh reader whose socket records every ``send`` and ``recv``, and
  writes the calls, the reader's starting state and the records (a pickle: a bench artefact, not an input);
- ``replay FILE`` (host): replays them through fresh readers (every request must be the recorded bytes, every
  record equal to the lab's) and prints the seconds of each read; ``--rounds 1`` under
  ``valgrind --tool=callgrind`` and ``--no-check`` gives the instructions of one read (subtract a
  ``--rounds 0`` run: the file's loading).

Run:
``python3 lab/run.py -- .venv/bin/python -m bench.read_replay capture lab/results/read.pickle`` then
``.venv/bin/python -m bench.read_replay replay lab/results/read.pickle``.
"""

from __future__ import annotations

import argparse
import pickle
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.cluster import Cluster, median
from bench.commands import creation, desired_table
from ipvsctl.backend.ipvs.codec import ServiceRecord
from ipvsctl.backend.ipvs.lean import LeanTransport
from ipvsctl.backend.ipvs.reread import TableReader
from ipvsctl.backend.netlink.channel import NetlinkChannel
from ipvsctl.backend.netlink.netns import NETLINK_GENERIC
from ipvsctl.ipvsadm import render_restore

Call = tuple[str, bytes]  # ("s", sent) or ("r", received)


@dataclass
class Recording:
    """One fresh read as the socket saw it, with what the reader started from and what it gave."""

    family_id: int
    next_sequence: int
    calls: list[Call]
    records: list[ServiceRecord]


class RecordingSocket:
    """A socket that records what is sent and received through it (the calls a read makes)."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real
        self.calls: list[Call] = []

    def send(self, data: bytes) -> int:
        """Send, recorded."""
        self.calls.append(("s", bytes(data)))
        return self.real.send(data)

    def recv_into(self, buffer: bytearray, nbytes: int = 0, flags: int = 0) -> int:
        """Receive, recorded (the bytes received, not the buffer)."""
        size = self.real.recv_into(buffer, nbytes, flags)
        self.calls.append(("r", bytes(buffer[:size])))
        return size

    def setblocking(self, flag: bool) -> None:
        """As the socket's."""
        self.real.setblocking(flag)

    def close(self) -> None:
        """Close the socket."""
        self.real.close()


class ReplayedSocket:
    """A socket that answers with recorded bytes, and fails on any request that is not the recorded one."""

    def __init__(self, calls: list[Call]) -> None:
        self.calls = calls
        self.at = 0

    def send(self, data: bytes) -> int:
        """Check the request is the recorded one."""
        kind, recorded = self.calls[self.at]
        if kind != "s" or bytes(data) != recorded:
            raise RuntimeError(f"call {self.at}: the read sent other bytes than the recorded read")
        self.at += 1
        return len(data)

    def recv_into(self, buffer: bytearray, _nbytes: int = 0, _flags: int = 0) -> int:
        """The next recorded answer (the size and flags a read passes change nothing here)."""
        kind, recorded = self.calls[self.at]
        if kind != "r":
            raise RuntimeError(f"call {self.at}: the read received where the recorded read sent")
        self.at += 1
        buffer[: len(recorded)] = recorded
        return len(recorded)

    def setblocking(self, flag: bool) -> None:
        """Nothing to change."""


def capture(path: Path, *, services: int) -> None:
    """In the lab: the table of ``services`` x 3, one fresh read recorded into ``path``."""
    restore = render_restore(creation(desired_table(Cluster(services, 3))))
    subprocess.run(["ipvsadm", "-C"], check=True)
    subprocess.run(["ipvsadm", "-R"], input=restore, text=True, check=True)
    try:
        transport = LeanTransport(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC).detach())
        channel = transport._channel
        recorder = RecordingSocket(channel._socket)
        family_id, next_sequence = transport._family_id, channel._next_sequence
        channel._socket = recorder  # type: ignore[assignment]  # the same two calls a read makes
        records = transport._reader.read_all()
        transport.close()
    finally:
        subprocess.run(["ipvsadm", "-C"], check=True)
    recording = {"family_id": family_id, "next_sequence": next_sequence, "calls": recorder.calls, "records": records}
    path.write_bytes(pickle.dumps(recording))  # a dict: the module may be __main__ when it writes or reads
    print(f"{len(recorder.calls)} socket calls, {len(records)} services: {path}")


def fresh_reader(recording: Recording) -> TableReader:
    """A reader in the state the recorded one started from, over the recorded answers."""
    channel = object.__new__(NetlinkChannel)  # no socket to open: the replayed one stands in
    channel._socket = ReplayedSocket(recording.calls)  # type: ignore[assignment]
    channel._target = "IPVS"
    channel._next_sequence = recording.next_sequence
    channel._buffer = bytearray(1 << 17)
    channel._send_room = 1 << 22
    return TableReader(channel, family_id=recording.family_id)


def replay(path: Path, *, rounds: int, check: bool = True) -> None:
    """Replay the recorded read ``rounds`` times, each by a fresh reader; print the seconds of each. Unless
    ``check`` is off, each read's records must equal the lab's (the comparison is not timed, but callgrind
    counts it: off, to count a read alone)."""
    recording = Recording(**pickle.loads(path.read_bytes()))  # our own artefact (see the module docstring)
    seconds = []
    for _ in range(rounds):
        reader = fresh_reader(recording)
        start = time.perf_counter()
        records = reader.read_all()
        seconds.append(time.perf_counter() - start)
        if check and records != recording.records:
            sys.exit("bench.read_replay: the replayed read gave other records than the lab's")
    if seconds:
        print(f"fresh read_all of {len(recording.records)} services: median {median(seconds):.3f} s, all {seconds}")


def main() -> None:
    """``capture`` in the lab or ``replay`` on the host (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    taking = verbs.add_parser("capture", help="in the lab: record one fresh read")
    taking.add_argument("file", type=Path)
    taking.add_argument("--services", type=int, default=10_000)
    giving = verbs.add_parser("replay", help="on the host: replay it through fresh readers")
    giving.add_argument("file", type=Path)
    giving.add_argument("--rounds", type=int, default=5)
    giving.add_argument("--no-check", action="store_true", help="do not compare the records (to count a read alone)")
    args = parser.parse_args()
    if args.verb == "capture":
        capture(args.file, services=args.services)
    else:
        replay(args.file, rounds=args.rounds, check=not args.no_check)


if __name__ == "__main__":
    main()
