"""When to sync: behind the "listed" gate, coalesced to at most one sync per minimum interval, resynced periodically.

- Nothing touches the kernel until every watcher has finished its first list (a partial view
  would delete what it has not seen yet).
- The first change after a quiet spell is synced at once; changes arriving within
  ``min_interval`` of the start of the last sync that took changes wait for the interval and go
  together. A periodic resync does not hold a change back: with N agents resyncing every
  ``resync_interval``, some agent is always within ``min_interval`` of its last resync.
- A full resync runs every ``resync_interval`` (and when a drain reaches its maximum time);
  it repairs drift and deletes drained real servers. Once the first full sync has succeeded, a resync
  goes in slices of about ``resync_slice`` keys (every key the kernel or the desired table holds, each
  slice read and planned on its own), and changes that arrive meanwhile are synced between two slices:
  at 10,000 Services a whole resync takes seconds under emulation, a slice a fraction of one.
- A failed sync keeps its work pending and is retried as a full sync after a growing delay;
  new changes are still synced as they come (one bad VIP does not hold up the others).
- With ``freeze_heap``, a successful full sync collects garbage and then freezes the heap
  (``gc.freeze``): the cache and desired table of a large cluster are long-lived, and a full
  collection walking them costs tens of milliseconds at 10,000 Services, paid by whichever
  change happens to trigger it. Frozen objects are still freed by reference counting.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import TypeVar

import structlog

from ipvsctl.agent.clock import Clock, backoff, wait_for_event
from ipvsctl.agent.metrics import CHANGE_KINDS, AgentMetrics
from ipvsctl.agent.status import AgentStatus
from ipvsctl.agent.syncer import Syncer, SyncOutcome
from ipvsctl.kube.views import ObjectRef
from ipvsctl.reconcile import slices

__all__ = ["SyncRunner"]

MAX_UNSYNCED_TRIGGERS = 10_000  # trigger times kept across failing syncs (the oldest are dropped beyond)
_T = TypeVar("_T")
RESYNC_SLICE = 500  # keys per slice of a resync: ~0.25 s of kernel reads at 10,000 Services in the lab


class SyncRunner:
    """Collects changed Services from the watchers and runs the Syncer on the schedule above."""

    def __init__(
        self,
        *,
        syncer: Syncer,
        clock: Clock,
        status: AgentStatus,
        metrics: AgentMetrics,
        listed: Callable[[], bool],
        min_interval: float = 1.0,
        resync_interval: float = 30.0,
        resync_slice: int = RESYNC_SLICE,
        freeze_heap: bool = False,
    ) -> None:
        self.syncer = syncer
        self.clock = clock
        self.status = status
        self.metrics = metrics
        self.min_interval = min_interval
        self.resync_interval = resync_interval
        self.resync_slice = resync_slice  # 0: every resync in one piece
        self.freeze_heap = freeze_heap
        self._listed = listed
        self._gate = asyncio.Event()
        self._wake = asyncio.Event()
        self._pending: dict[ObjectRef, float] = {}  # Service → when its first untranslated change arrived
        self._unsynced: dict[ObjectRef, float] = {}  # translated, but the sync failed: for the latency metric
        self._unsynced_triggers: list[float] = []  # EndpointSlice trigger times of changes whose sync failed
        # Services with a change of each kind not yet taken by a sync (kube-proxy's *_changes_pending).
        self._changed: dict[str, set[ObjectRef]] = {kind: set() for kind in CHANGE_KINDS}
        self._last_start: float | None = None
        self._last_full_start: float | None = None
        self._next_full = 0.0
        self._followup_at: float | None = None  # an incremental sync for keys the last one left pending
        self.sync_count = 0
        self._retries: Iterator[float] | None = None
        self.outcomes: list[SyncOutcome] = []  # every sync's outcome, newest last (bounded)
        self._log = structlog.get_logger("ipvsctl.agent.runner")

    def mark(self, refs: set[ObjectRef], *, kind: str = "") -> None:
        """Services changed (from a watch event or a relist of ``kind``); opens the gate once every list is in."""
        now = self.clock.now()
        for ref in refs:
            self._pending.setdefault(ref, now)
        if kind in self._changed and refs:
            self._changed[kind] |= refs
            self.metrics.changes_queued(
                kind=kind, services=len(refs), pending=len(self._changed[kind]), at=self.clock.wall().timestamp()
            )
        if not self._gate.is_set() and self._listed():
            self._gate.set()
        if refs or self._gate.is_set():
            self._wake.set()

    async def run(self) -> None:
        """Sync forever (cancel to stop; a sync in progress is cancelled with it)."""
        await self._gate.wait()
        self._log.info("initial_lists_done", services=self.syncer.service_count)
        while True:
            await self._wait_for_work()
            await self._respect_min_interval()
            full = self.clock.now() >= self._deadline()
            if full and self._in_slices():
                await self.run_resync()
            else:
                await self.run_once(full=full)

    def _in_slices(self) -> bool:
        """A resync goes in slices once a full sync has succeeded and none is failing (a retry is whole)."""
        return self.resync_slice > 0 and self.status.initial_sync_done and self._retries is None

    async def run_resync(self) -> SyncOutcome:
        """A full resync in slices, with the changes that arrive meanwhile synced between them.

        Recorded as one full sync (its duration leaves the interleaved syncs out). A slice or an interleaved
        sync that fails ends it as failed, and the retry is a full sync in one piece.
        """
        start = self.clock.now()
        self._last_full_start = start  # not _last_start: a resync holds no change back (see run_once)
        busy = 0.0
        operations = drains = 0
        began = time.perf_counter()
        scope = await self._timed(self.syncer.resync_scope())
        busy += time.perf_counter() - began
        steps: list[Callable[[], Awaitable[SyncOutcome]]] = []
        last: SyncOutcome | None = None
        if isinstance(scope, SyncOutcome):
            last = scope  # the kernel could not be listed
        else:
            steps = [partial(self.syncer.apply_slice, keys) for keys in slices(scope, size=self.resync_slice)]
            steps += [self.syncer.repair_netfilter, self.syncer.bind_all]
        for step in steps:
            if self._pending:  # changes came in: they go before the next step, as they would between syncs
                between = await self.run_once(full=False)
                if not between.ok:
                    last = between
                    break
            began = time.perf_counter()
            last = await self._timed(step())
            busy += time.perf_counter() - began
            operations += last.operations
            drains += last.drains_started
            if not last.ok:
                break
        outcome = SyncOutcome(
            ok=last is not None and last.ok,
            full=True,
            operations=operations,
            keys=last.keys if last is not None and last.ok else 0,
            drains_started=drains,
            error="" if last is None else last.error,
        )
        return await self._record(outcome, start=start, seconds=busy, taken={}, triggers=[])

    async def _timed(self, step: Awaitable[_T]) -> _T:
        """One step of a sync, shown as running in the status (a step that never ends is a stall)."""
        self.status.sync_started = self.clock.now()
        try:
            return await step
        finally:
            self.status.sync_started = None

    async def run_once(self, *, full: bool) -> SyncOutcome:
        """Translate pending Services and apply; record the outcome everywhere it is reported."""
        start = self.clock.now()
        wall_start = time.perf_counter()
        if self._pending:  # only a sync of changes starts the interval: a periodic resync holds no change back
            self._last_start = start
        if full:
            self._last_full_start = start
        self.status.sync_started = start
        taken = self._pending
        self._pending = {}
        for changed in self._changed.values():
            changed.clear()
        self.metrics.changes_taken()
        triggers = self.syncer.take_triggers(taken)
        try:
            await self.syncer.translate(taken)
            outcome = await self.syncer.apply(full=full)
        finally:
            self.status.sync_started = None
        return await self._record(
            outcome, start=start, seconds=time.perf_counter() - wall_start, taken=taken, triggers=triggers
        )

    async def _record(
        self,
        outcome: SyncOutcome,
        *,
        start: float,
        seconds: float,
        taken: dict[ObjectRef, float],
        triggers: list[float],
    ) -> SyncOutcome:
        """Report a sync's outcome everywhere (metrics, status, retries, log) and schedule what follows it."""
        full = outcome.full
        self.sync_count += 1
        end = self.clock.now()
        kind = "full" if full else "incremental"
        self.metrics.observe_sync(kind=kind, seconds=seconds)
        self.metrics.syncs.labels(kind=kind, result="ok" if outcome.ok else "failed").inc()
        self.status.last_sync_end = end
        self.status.last_sync_ok = outcome.ok
        self._followup_at = start + self.min_interval if outcome.drains_started else None
        if outcome.ok:
            self._retries = None
            self.status.initial_sync_done = True
            self.metrics.synced(at=time.time())
            for since in {**taken, **self._unsynced}.values():
                self.metrics.event_latency.observe(max(end - since, 0.0))
            self._unsynced = {}
            wall_end = self.clock.wall().timestamp()
            for trigger in (*triggers, *self._unsynced_triggers):
                self.metrics.programmed(max(wall_end - trigger, 0.0))
            self._unsynced_triggers = []
            if full:
                self._next_full = start + self.resync_interval
                await self.syncer.after_full_sync()
                if self.freeze_heap:
                    gc.collect()  # only what is new since the last freeze: the frozen part is not walked
                    gc.freeze()
        else:
            # The keys stay pending in the Syncer; the retry is a full sync after a growing delay.
            self._unsynced = {**taken, **self._unsynced}
            self._unsynced_triggers = (self._unsynced_triggers + triggers)[-MAX_UNSYNCED_TRIGGERS:]
            self._retries = self._retries or backoff(first=max(self.min_interval, 0.5), cap=self.resync_interval)
            self._next_full = end + next(self._retries)
        self.metrics.ready.set(1 if self.status.ready else 0)
        log = self._log.info if outcome.operations or not outcome.ok else self._log.debug
        log(
            "sync_done" if outcome.ok else "sync_failed",
            full=full,
            services=len(taken),
            keys=outcome.keys,
            operations=outcome.operations,
            duration_s=round(end - start, 6),
            **({"error": outcome.error} if outcome.error else {}),
        )
        self.outcomes = [*self.outcomes[-99:], outcome]
        return outcome

    def _deadline(self) -> float:
        """When the next full sync is due: the resync (or retry) time, or the earliest drain expiry."""
        due = self._next_full
        expiry = self.syncer.drain_expiry()
        # An expiry a full sync has already seen is that sync's to act on, not a reason to loop.
        if expiry is not None and (self._last_full_start is None or expiry > self._last_full_start):
            due = min(due, expiry)
        return due

    async def _wait_for_work(self) -> None:
        while True:
            self._wake.clear()
            now = self.clock.now()
            if self._pending or now >= self._deadline():
                return
            due = self._deadline()
            switch = self.syncer.next_switch()
            if switch is not None:
                wait = switch - self.clock.wall().timestamp()
                if wait <= 0:  # a held cluster-scope change is due: translate its Service again
                    self.mark(self.syncer.take_due_switches())
                    return
                due = min(due, now + wait)
            if self._followup_at is not None:
                if now >= self._followup_at:
                    return
                due = min(due, self._followup_at)
            await wait_for_event(self._wake, within=due - now, clock=self.clock)

    async def _respect_min_interval(self) -> None:
        if self._last_start is None:
            return
        wait = self._last_start + self.min_interval - self.clock.now()
        if wait > 0:
            await self.clock.sleep(wait)
