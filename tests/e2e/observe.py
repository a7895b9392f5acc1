"""Watching nodes while a scenario runs: was a table ever flushed, was the nftables table ever missing?

`TableWatch` samples nodes' IPVS tables (every 100 ms, through netlink: ipvs_read.py says why not
/proc/net/ip_vs) and the presence of ipvsctl's nftables table (every second, through `nft`) in a background
thread, bounded in time, and keeps the smallest table each node showed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.e2e.ipvs_read import TableReader
from tests.kernel.netlab import Netns

TABLE_PERIOD = 0.1
NFT_PERIOD = 1.0
MAX_SECONDS = 300.0
MAX_GAPS = 20


@dataclass(slots=True)
class NodeWatch:
    """What one node's samples showed."""

    samples: int = 0
    fewest_services: int | None = None
    fewest_serving: int | None = None  # real servers with weight > 0 (draining ones may go: a resync deletes
    # a weight-0 real server once its connections are gone, which is not a flush)
    nft_checks: int = 0
    nft_missing: int = 0
    services_seen: set[tuple[str, str, int]] = field(default_factory=set)
    # Samples that lacked virtual services an earlier sample had: (seconds since the watch began, the keys
    # missing), the first MAX_GAPS of them: which service went, and when, when a table shrinks.
    gaps: list[tuple[float, tuple[tuple[str, str, int], ...]]] = field(default_factory=list)


class TableWatch:
    """Samples `nodes` (name, namespace) until stopped or `seconds` pass."""

    def __init__(self, nodes: Sequence[tuple[str, Netns]], *, seconds: float = MAX_SECONDS) -> None:
        self._nodes = list(nodes)
        self._seconds = min(seconds, MAX_SECONDS)
        self._stop = threading.Event()
        self.nodes = {name: NodeWatch() for name, _ in self._nodes}
        self._thread = threading.Thread(target=self._run, name="table-watch", daemon=True)

    def __enter__(self) -> TableWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._seconds + 10)

    def _run(self) -> None:
        with TableReader() as tables:
            self._sample(tables)

    def _sample(self, tables: TableReader) -> None:
        started = time.monotonic()
        deadline = started + self._seconds
        next_nft = 0.0
        while not self._stop.is_set() and time.monotonic() < deadline:
            check_nft = time.monotonic() >= next_nft
            for name, netns in self._nodes:
                watch = self.nodes[name]
                table = tables.read(netns.name)
                serving = sum(1 for reals in table.values() for state in reals.values() if state.weight > 0)
                watch.samples += 1
                services = len(table)
                watch.fewest_services = (
                    services if watch.fewest_services is None else min(services, watch.fewest_services)
                )
                watch.fewest_serving = serving if watch.fewest_serving is None else min(serving, watch.fewest_serving)
                missing = watch.services_seen - set(table)
                if missing and len(watch.gaps) < MAX_GAPS:
                    watch.gaps.append((round(time.monotonic() - started, 2), tuple(sorted(missing))))
                watch.services_seen |= set(table)
                if check_nft:
                    watch.nft_checks += 1
                    listed = netns.run("nft", "list", "table", "inet", "ipvsctl", check=False)
                    watch.nft_missing += listed.returncode != 0
            if check_nft:
                next_nft = time.monotonic() + NFT_PERIOD
            self._stop.wait(TABLE_PERIOD)
