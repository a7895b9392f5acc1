"""One step of the agent: translate the Services that changed, then bring the kernel to the desired table.

``translate`` re-runs ``translate_service`` for the given Services only, settles conflicts
(``DesiredState``), reports problems as Events and updates healthCheckNodePort servers. ``apply``
runs ``reconcile.sync`` limited (``only=``) to the VIP keys those Services had or have now — or,
for a full resync, over the whole table, which repairs drift and ends drains. Keys stay pending
until an apply succeeds.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import structlog

from ipvsctl.affinity_scope import digest, is_cluster_scope
from ipvsctl.affinity_switch import due_holds, hold, serving_addresses, switch_time
from ipvsctl.agent.cache import ClusterCache, Subject
from ipvsctl.agent.desired import DesiredState
from ipvsctl.agent.events import EventRecorder, Problem
from ipvsctl.agent.healthcheck import HealthCheckServers, health_check_port
from ipvsctl.agent.metrics import AgentMetrics
from ipvsctl.agent.traffic import VipOwner
from ipvsctl.backend.base import Backend, KernelState
from ipvsctl.backend.nft.base import NetfilterTable
from ipvsctl.backend.sysctl import moves_keep_connections
from ipvsctl.errors import BackendError
from ipvsctl.kube.views import ObjectRef, ServiceView
from ipvsctl.model import AddRealServer, DeleteRealServer, EditRealServer, Operation, Protocol, ServiceKey
from ipvsctl.netfilter.plan import NetfilterPlan
from ipvsctl.plan import Ownership, Settled
from ipvsctl.reconcile import DrainTracker, Netfilter, NetfilterOutcome, Without, repair_netfilter, sync
from ipvsctl.report import op_name
from ipvsctl.translate import (
    NodeContext,
    Notice,
    NoticeKind,
    Policy,
    Rejection,
    ServiceResult,
    VipRole,
    service_age,
    translate_service,
)

__all__ = ["SyncOutcome", "Syncer"]

_T = TypeVar("_T")
DigestLabels = tuple[str, str, str, str]  # namespace, Service, virtual service, digest of the mh table's inputs

TRANSLATION = "translation"  # the Event topic of rejections and notices
VIP_TAKEN = "IpvsctlVIPTaken"  # the Event reason of a VIP whose address carries a foreign virtual service
DRAIN_TIMED_OUT = "IpvsctlDrainTimedOut"  # the Event reason of a drain ended by its time limit


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """What one apply did."""

    ok: bool
    full: bool
    operations: int = 0
    keys: int = 0  # VIP keys planned (a full sync counts the whole table)
    drains_started: int = 0  # real servers set to weight 0 by this sync
    error: str = ""


_NOTICE_REASONS: dict[NoticeKind, str | None] = {
    NoticeKind.EXTERNAL_IP_IGNORED: "IpvsctlExternalIPIgnored",
    NoticeKind.LOAD_BALANCER_IP_IGNORED: "IpvsctlLoadBalancerIPIgnored",
    NoticeKind.ADDRESS_REFUSED: "IpvsctlAddressRefused",
    NoticeKind.UNKNOWN_ANNOTATION: "IpvsctlUnknownAnnotation",
    NoticeKind.SOURCE_RANGE_INVALID: "IpvsctlSourceRangeInvalid",
    NoticeKind.WRONG_FAMILY: "IpvsctlWrongAddressFamily",
    NoticeKind.UNKNOWN_VALUE: "IpvsctlUnknownValue",
    NoticeKind.HINTS_UNREADABLE: "IpvsctlHintsUnreadable",
    NoticeKind.AFFINITY_SCOPE: "IpvsctlAffinityScope",
    # What the Service asked for (ipMode Proxy), or what changes with endpoints (topology): said by diff, not Events.
    NoticeKind.LOAD_BALANCER_IP_PROXIED: None,
    NoticeKind.TOPOLOGY: None,
    # Changes with every endpoint on every node: the no-local-endpoints metric says it.
    NoticeKind.NO_LOCAL_ENDPOINTS: None,
}


def notice_reason(notice: Notice) -> str | None:
    """The Event reason of a notice; None for those that are not Event-worthy."""
    return _NOTICE_REASONS.get(notice.kind, "IpvsctlNotice")


class Syncer:
    """Translation results, the desired table and the kernel, kept in step."""

    def __init__(
        self,
        *,
        cache: ClusterCache,
        backend: Backend,
        policy: Policy,
        drains: DrainTracker,
        recorder: EventRecorder,
        health_checks: HealthCheckServers,
        metrics: AgentMetrics,
        netfilter: NetfilterTable | None = None,
        cluster_families: Collection[int] = (),
        switch_delay: float = 0.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._cache = cache
        self._switch_delay = switch_delay
        self._wall = wall
        # Services whose cluster-scope tables hold a change back, and when it is due (wall-clock seconds).
        self.holds: dict[ObjectRef, float] = {}
        self._backend = backend
        self._policy = policy
        self._drains = drains
        self._recorder = recorder
        self._health_checks = health_checks
        self._metrics = metrics
        self.desired = DesiredState()
        self.pending_keys: set[ServiceKey] = set()
        self.settled: Settled = {}  # pairs the plans found equal (see plan.Settled)
        self.refused: dict[ServiceKey, str] = {}  # desired keys the last syncs could not claim, and why
        self._subjects: dict[ObjectRef, Subject] = {}
        self._states: dict[ObjectRef, str] = {}
        self._state_counts: Counter[str] = Counter()
        self._no_local: set[ObjectRef] = set()  # externalTrafficPolicy Local, external VIPs, no local endpoint
        self._no_local_internal: set[ObjectRef] = set()  # internalTrafficPolicy Local, no local endpoint
        self._synced_node_ips: frozenset[str] = frozenset()
        self._digests: dict[ServiceKey, DigestLabels] = {}  # the digest series exported, by VIP
        self._netfilter = (
            None
            if netfilter is None
            else Netfilter(
                netfilter,
                NetfilterPlan(
                    services=self.desired.services,
                    role_of=self._role_of,
                    node_addresses=lambda: frozenset(self.node.addresses),
                    cluster_families=cluster_families,
                ),
            )
        )
        self._log = structlog.get_logger("ipvsctl.agent.sync")

    def _count_netfilter(self, outcome: NetfilterOutcome | None, *, full: bool) -> None:
        if outcome is None or self._netfilter is None:
            return
        self._metrics.netfilter_changes.labels(op="add").inc(outcome.added)
        self._metrics.netfilter_changes.labels(op="delete").inc(outcome.deleted)
        self._metrics.netfilter_elements.set(len(self._netfilter.plan.elements()))
        if outcome.rewritten:
            self._metrics.netfilter_rewrites.inc()
            self._log.info("netfilter_table_written", full=full, elements=outcome.added)

    def _role_of(self, key: ServiceKey) -> VipRole | None:
        """The role of a desired VIP, as its owning Service's translation gave it."""
        owner = self.desired.owners.get(key)
        result = self.desired.results.get(owner) if owner is not None else None
        return None if result is None else result.roles.get(key)

    @property
    def service_count(self) -> int:
        """How many Services the cluster view holds now."""
        return len(self._cache.services)

    def drain_expiry(self) -> float | None:
        """When the earliest drain reaches ``--max-drain-seconds`` (clock time); None when nothing drains."""
        started = self._drains.started
        if not started:
            return None
        return min(started.values()) + self._drains.max_drain_seconds

    async def after_full_sync(self) -> None:
        """What a successful full sync is also the moment for: Events that have held long enough are written
        again, and healthCheckNodePort servers that could not listen try again."""
        self._recorder.refresh()
        await self._health_checks.retry()

    @property
    def node(self) -> NodeContext:
        """This node's name and addresses (none until its Node is known)."""
        node = self._cache.node
        if node is None:
            return NodeContext(self._cache.node_name)
        return NodeContext(self._cache.node_name, node.addresses, zone=node.zone)

    def vip_owner(self, key: ServiceKey) -> VipOwner | None:
        """What names a desired VIP (its Service, role and Pods); None for a VIP that is not the agent's."""
        ref = self.desired.owners.get(key)
        result = self.desired.results.get(ref) if ref is not None else None
        view = self._cache.services.get(ref) if ref is not None else None
        role = result.roles.get(key) if result is not None else None
        if view is None or result is None or role is None:
            return None
        return VipOwner(view, role, result.pods)

    def take_triggers(self, refs: Iterable[ObjectRef]) -> list[float]:
        """The EndpointSlice trigger times (wall-clock seconds) of these Services' changes not yet programmed."""
        return self._cache.take_triggers(refs)

    async def translate(self, refs: Iterable[ObjectRef]) -> None:
        """Translate these Services again (a missing one is removed) and remember the VIP keys to plan."""
        node = self.node
        touched: set[ObjectRef] = set()
        for ref in refs:
            view = self._cache.services.get(ref)
            result = None if view is None else self._held(ref, self._translate_one(view, node=node))
            if result is None:
                self.holds.pop(ref, None)
            change = self.desired.update(ref, result)
            self.pending_keys |= change.keys
            touched |= change.services
            touched.add(ref)
        for ref in sorted(touched):
            try:
                await self._report(ref)
            except Exception as error:  # one Service's Events and health check, not the agent's
                self._metrics.error("translation")
                self._log.error("report_failed", service=str(ref), error=repr(error), exc_info=True)
        self._update_gauges()

    def next_switch(self) -> float | None:
        """When the earliest held cluster-scope change is due (wall-clock seconds); None when none is held."""
        return min(self.holds.values(), default=None)

    def take_due_switches(self) -> set[ObjectRef]:
        """The Services whose held changes are due now: to translate again."""
        return due_holds(self.holds, now=self._wall())

    def _held(self, ref: ObjectRef, result: ServiceResult) -> ServiceResult:
        """``result`` with its cluster-scope changes held until their moment (``ipvsctl.affinity_switch``)."""
        if self._switch_delay <= 0:
            return result
        slices = self._cache.slices_for(ref)
        now = self._wall()
        held = hold(
            result,
            old=self.desired.results.get(ref),
            switch_at=switch_time(slices, delay=self._switch_delay, now=now),
            now=now,
            serving=serving_addresses(slices),
        )
        if held.until is None:
            self.holds.pop(ref, None)
        else:
            self.holds[ref] = held.until
            self._log.info("affinity_switch_held", service=str(ref), seconds=round(held.until - now, 3))
        return held.result

    def _translate_one(self, view: ServiceView, *, node: NodeContext) -> ServiceResult:
        """One Service's translation; a failure nobody foresaw (a bug) rejects that Service alone.

        Anyone who may create a Service must not be able to stop the agent on every node.
        """
        try:
            return translate_service(view, self._cache.slices_for(view.ref), node=node, policy=self._policy)
        except Exception as error:  # confined to this Service, logged with its traceback
            self._metrics.error("translation")
            self._log.error("translation_failed", service=str(view.ref), error=repr(error), exc_info=True)
            message = f"cannot be translated (unexpected {type(error).__name__}); see the agent's log"
            return ServiceResult(
                ref=view.ref,
                age=service_age(view),
                rejections=(Rejection(view.ref, "spec", message),),
            )

    async def apply(self, *, full: bool) -> SyncOutcome:
        """Plan and apply the pending keys (every key when ``full``) and bind the VIPs; never raises BackendError."""
        return await self._apply(None if full else set(self.pending_keys), settle_node_ips=True)

    async def resync_scope(self) -> list[ServiceKey] | SyncOutcome:
        """Every key a full resync looks at: the kernel's (one service dump), the desired, draining and pending
        ones; a failed outcome when the kernel cannot be listed."""
        present = await self._step(lambda: self._backend.service_keys(None), full=True)
        if isinstance(present, SyncOutcome):
            return present
        draining = {key for key, _ in self._drains.started}
        return [*(present | self.desired.services.keys() | self.pending_keys | draining)]

    async def apply_slice(self, keys: Collection[ServiceKey]) -> SyncOutcome:
        """One slice of a full resync: these keys read, planned and applied as an incremental sync does its own.

        Addresses the node has just lost stay owned until the resync ends (``bind_all``): a NodePort on one
        of them may be in a later slice.
        """
        return await self._apply(set(keys), settle_node_ips=False)

    async def repair_netfilter(self) -> SyncOutcome:
        """A step at the end of a resync in slices: the nftables table checked and repaired as a full sync does."""
        if self._netfilter is None:
            return SyncOutcome(ok=True, full=True)
        netfilter = self._netfilter
        outcome = await self._step(lambda: repair_netfilter(netfilter, refused=self.refused.keys()), full=True)
        if isinstance(outcome, NetfilterOutcome):
            self._count_netfilter(outcome, full=True)
            return SyncOutcome(ok=True, full=True, operations=outcome.added + outcome.deleted)
        return outcome

    async def bind_all(self) -> SyncOutcome:
        """The last step of a resync in slices: the interface made to hold exactly the desired VIPs (addresses
        in no slice, such as one bound by hand or left by a crash, go), as a full sync binds them."""
        node_ips = frozenset(self.node.addresses)
        bind = self.desired.address_view(excluding=node_ips)
        refused_addresses = frozenset(key.address for key in self.refused)
        wanted = Without(bind, refused_addresses) if refused_addresses else bind
        outcome = await self._step(lambda: self._backend.bind_addresses(wanted), full=True)
        if isinstance(outcome, SyncOutcome):
            return outcome
        self._synced_node_ips = node_ips
        # The slices exported their keys' digests: what is left is a series of a key that is in none of them.
        self._export_digests(self._digests.keys() - self.desired.services.keys())
        return SyncOutcome(ok=True, full=True, keys=len(self.desired.services))

    async def _step(self, step: Callable[[], Awaitable[_T]], *, full: bool) -> _T | SyncOutcome:
        """One step of a sync: its value, or a failed outcome (a BackendError, or a bug: logged, never raised).

        A bug, maybe triggered by one object, fails the sync and it is retried (the table stays as it is,
        readiness says so), rather than every node's agent exiting and relisting the cluster in a loop.
        """
        try:
            return await step()
        except BackendError as error:
            self._metrics.error("backend")
            self._log.error("sync_failed", full=full, error=str(error))
            return SyncOutcome(ok=False, full=full, error=str(error))
        except Exception as error:
            self._metrics.error("sync")
            self._log.error("sync_crashed", full=full, error=repr(error), exc_info=True)
            return SyncOutcome(ok=False, full=full, error=f"unexpected {type(error).__name__}: {error}")

    async def _apply(self, only: set[ServiceKey] | None, *, settle_node_ips: bool) -> SyncOutcome:
        full = only is None
        node_ips = frozenset(self.node.addresses)
        # Node ports on addresses the node just lost are still ours to delete, until a sync succeeds.
        ownership = Ownership(
            node_addresses=node_ips | self._synced_node_ips, node_port_range=self._policy.node_port_range
        )
        result = await self._step(
            lambda: sync(
                self._backend,
                self.desired.table,
                ownership=ownership,
                bind=self.desired.address_view(excluding=node_ips),
                drains=self._drains,
                only=only,
                settled=self.settled,
                netfilter=self._netfilter,
                cluster_moves=moves_keep_connections(),
            ),
            full=full,
        )
        self._metrics.drain_queue.set(len(self._drains))
        self._metrics.affinity_switches_held.set(len(self.holds))
        if isinstance(result, SyncOutcome):
            return result
        self._count_netfilter(result.netfilter, full=full)
        # Operations on a key that failed may or may not have gone in; count only the certain ones.
        failed = {failure.operation.key for failure in result.failures}
        applied = [op for op in result.operations if op.key not in failed]
        self._metrics.count_operations(applied)
        self._report_cut_drains(applied, result.state)
        for operation in applied:
            self._log.debug("operation_applied", op=op_name(operation), vip=str(operation.key))
        for failure in result.failures:
            self._metrics.error("operation")
            self._log.error(
                "operation_failed",
                op=op_name(failure.operation),
                vip=str(failure.operation.key),
                service=str(self.desired.owners.get(failure.operation.key, "")),
                errno=failure.errno,
                error=failure.message,
            )
        planned = len(self.desired.services) if only is None else len(only)
        drained = {
            op.key
            for op in applied
            if (isinstance(op, EditRealServer) and op.drain)
            or (isinstance(op, AddRealServer) and op.real.weight == 0)  # a cluster-scope drain: moved to weight 0
        }
        if result.ok:
            self.pending_keys -= only if only is not None else set(self.pending_keys)
            if settle_node_ips:
                self._synced_node_ips = node_ips
            self._metrics.virtual_services.set(len(self.desired.services))
            self._metrics.real_servers.set(self.desired.real_servers)
            self._export_digests(only)
        # The drain clock starts when a sync sees weight 0: plan these keys again soon.
        self.pending_keys |= drained
        await self._note_refusals(result.refused, only=only)
        return SyncOutcome(
            ok=result.ok,
            full=full,
            operations=len(applied),
            keys=planned,
            drains_started=len(drained),
            error="; ".join(str(f) for f in result.failures),
        )

    def _report_cut_drains(self, applied: Iterable[Operation], state: KernelState | None) -> None:
        """A Warning Event on the Service of each draining real server deleted with connections left: only
        ``--max-drain-seconds`` deletes one of those (a drain otherwise waits for its connections to end)."""
        if state is None:
            return
        for operation in applied:
            # A UDP or SCTP real server is deleted at once, never drained: only TCP ones reach the limit.
            if (
                not isinstance(operation, DeleteRealServer)
                or operation.real.weight != 0
                or operation.service.protocol is not Protocol.TCP
            ):
                continue
            counts = state.connections.get((operation.service, operation.real.key))
            if counts is None or not counts.total:
                continue
            ref = self.desired.owners.get(operation.service)
            subject = self._subjects.get(ref) if ref is not None else None
            message = (
                f"the drain of {operation.real} on {operation.service} reached --max-drain-seconds "
                f"({self._drains.max_drain_seconds:g} s) with {counts.total} connections left; they are cut"
            )
            if subject is None:  # the Service is gone: nothing to put the Event on, the log says it
                self._log.warning("drain_timed_out", vip=str(operation.service), detail=message)
                continue
            self._recorder.happened(subject, reason=DRAIN_TIMED_OUT, message=message)

    async def _note_refusals(self, refused: Mapping[ServiceKey, str], *, only: Collection[ServiceKey] | None) -> None:
        """Remember which desired keys the last sync could not claim, and re-report the Services that changed.

        A refused key is not kept pending: the next full resync looks again (the foreign entry may be gone).
        """
        scope = self.refused.keys() | refused.keys() if only is None else only
        changed = {key for key in scope if self.refused.get(key) != refused.get(key)}
        for key in changed:
            if key in refused:
                self.refused[key] = refused[key]
            else:
                self.refused.pop(key, None)
        for ref in sorted({owner for key in changed if (owner := self.desired.owners.get(key)) is not None}):
            await self._report(ref)
        if changed:
            self._update_gauges()

    async def _report(self, ref: ObjectRef) -> None:
        """Events, health-check server and gauges of one Service after its translation changed."""
        view = self._cache.services.get(ref)
        result = self.desired.results.get(ref)
        if view is None or result is None:
            subject = self._subjects.pop(ref, None)
            if subject is not None:
                self._recorder.forget(subject)
            self._set_state(ref, None)
            self._no_local.discard(ref)
            self._no_local_internal.discard(ref)
            await self._health_checks.update(ref, port=None, local_endpoints=0)
            return
        subject = Subject("Service", ref, uid=view.uid)
        old_subject = self._subjects.get(ref)
        if old_subject is not None and old_subject != subject:
            self._recorder.forget(old_subject)  # deleted and created again under the same name
        self._subjects[ref] = subject
        self._recorder.set(subject, topic=TRANSLATION, problems=self._problems(ref, result))
        rejected = bool(self.desired.rejections(ref)) or bool(self._refused_of(result))
        self._set_state(ref, _state(result, rejected=rejected))
        local = view.external_traffic_policy == "Local" and bool(result.services) and result.local_endpoints == 0
        (self._no_local.add if local else self._no_local.discard)(ref)
        internal = view.internal_traffic_policy == "Local" and bool(result.services) and result.local_endpoints == 0
        (self._no_local_internal.add if internal else self._no_local_internal.discard)(ref)
        # A Service rejected as a whole (its healthCheckNodePort may be why) gets no server either.
        served = not result.skipped and not result.rejections
        await self._health_checks.update(
            ref, port=health_check_port(view) if served else None, local_endpoints=result.local_endpoints
        )

    def _export_digests(self, only: Collection[ServiceKey] | None) -> None:
        """Bring the digest series of the keys in scope (every key when None) in step with the desired table.

        Only the synced keys are looked at: walking every VIP on each sync cost 2 ms per change at 10,000
        Services (two thirds of an incremental sync), and a full sync catches up with everything.
        """
        scope = self._digests.keys() | self.desired.services.keys() if only is None else only
        for key in scope:
            virtual = self.desired.services.get(key)
            owner = self.desired.owners.get(key)
            labels = (
                (owner.namespace, owner.name, str(key), digest(virtual))
                if virtual is not None and owner is not None and is_cluster_scope(virtual)
                else None
            )
            old = self._digests.get(key)
            if labels == old:
                continue
            if old is not None:
                del self._digests[key]
                self._metrics.affinity_digests.remove(*old)
            if labels is not None:
                self._digests[key] = labels
                self._metrics.affinity_digests.labels(*labels).set(1)

    def _problems(self, ref: ObjectRef, result: ServiceResult) -> list[Problem]:
        problems = [("IpvsctlRejected", f"{r.field}: {r.message}") for r in self.desired.rejections(ref)]
        problems += [(VIP_TAKEN, f"{result.sources.get(key, 'spec')}: {why}") for key, why in self._refused_of(result)]
        for notice in result.notices:
            reason = notice_reason(notice)
            if reason is not None:
                problems.append((reason, f"{notice.field}: {notice.message}"))
        return problems

    def _refused_of(self, result: ServiceResult) -> list[tuple[ServiceKey, str]]:
        """The Service's VIPs that the agent could not claim (a foreign virtual service on the address)."""
        if not self.refused:
            return []
        return [(vs.key, self.refused[vs.key]) for vs in result.services if vs.key in self.refused]

    def _set_state(self, ref: ObjectRef, state: str | None) -> None:
        old = self._states.pop(ref, None)
        if old is not None:
            self._state_counts[old] -= 1
        if state is not None:
            self._states[ref] = state
            self._state_counts[state] += 1

    def _update_gauges(self) -> None:
        for state in ("programmed", "rejected", "skipped"):
            self._metrics.services.labels(state=state).set(self._state_counts[state])
        self._metrics.without_local_endpoints(internal=len(self._no_local_internal), external=len(self._no_local))
        self._metrics.health_check_servers.set(len(self._health_checks.listening))


def _state(result: ServiceResult, *, rejected: bool) -> str:
    if result.skipped:
        return "skipped"
    return "rejected" if rejected else "programmed"
