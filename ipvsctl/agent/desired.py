"""The desired table kept up to date one Service at a time, with VIP conflicts settled as ``resolve`` does.

``DesiredState.update(ref, result)`` replaces one Service's translation and answers which VIP
keys may have changed (the Service's old and new keys) and which Services' conflict rejections
may have changed (every claimant of those keys). Winners and rejection messages come from
``translate.resolve`` itself, run on just the claimants of the changed keys; a property test
checks that the state always equals ``resolve`` over every result.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from ipvsctl.kube.views import ObjectRef
from ipvsctl.model import ServiceKey, Table, VirtualService
from ipvsctl.reconcile import Without
from ipvsctl.translate import Rejection, ServiceResult, resolve

__all__ = ["DesiredChange", "DesiredState"]


@dataclass(frozen=True, slots=True)
class DesiredChange:
    """What one update may have changed: VIP keys to re-plan, Services whose conflicts to re-report."""

    keys: frozenset[ServiceKey] = frozenset()
    services: frozenset[ObjectRef] = frozenset()

    def __or__(self, other: DesiredChange) -> DesiredChange:
        return DesiredChange(self.keys | other.keys, self.services | other.services)


@dataclass(slots=True)
class DesiredState:
    """Per-Service translations, who claims each VIP, the winning virtual services and the conflicts."""

    results: dict[ObjectRef, ServiceResult] = field(default_factory=dict)
    claims: dict[ServiceKey, set[ObjectRef]] = field(default_factory=dict)
    services: dict[ServiceKey, VirtualService] = field(default_factory=dict)
    owners: dict[ServiceKey, ObjectRef] = field(default_factory=dict)
    conflicts: dict[ObjectRef, tuple[Rejection, ...]] = field(default_factory=dict)
    real_servers: int = 0  # across the desired table, kept as it changes
    _addresses: Counter[str] = field(default_factory=Counter)

    @property
    def table(self) -> Table:
        """The desired table (a read-only view, valid until the next update)."""
        return Table(MappingProxyType(self.services))

    def addresses(self) -> frozenset[str]:
        """Every desired VIP address."""
        return frozenset(self._addresses)

    def address_view(self, *, excluding: Collection[str] = frozenset()) -> Without:
        """A live set of the desired VIP addresses less ``excluding``, answering ``in`` without a copy."""
        return Without(self._addresses.keys(), frozenset(excluding))

    def rejections(self, ref: ObjectRef) -> tuple[Rejection, ...]:
        """Why a Service (or some of its VIPs) is not programmed: its own rejections, then lost conflicts."""
        result = self.results.get(ref)
        own = result.rejections if result is not None else ()
        return own + self.conflicts.get(ref, ())

    def update(self, ref: ObjectRef, result: ServiceResult | None) -> DesiredChange:
        """Replace (or, with None, remove) one Service's translation."""
        old = self.results.pop(ref, None)
        old_keys = {vs.key for vs in old.services} if old is not None else set()
        for key in old_keys:
            claimants = self.claims[key]
            claimants.discard(ref)
            if not claimants:
                del self.claims[key]
        new_keys: set[ServiceKey] = set()
        if result is not None:
            self.results[ref] = result
            new_keys = {vs.key for vs in result.services}
            for key in new_keys:
                self.claims.setdefault(key, set()).add(ref)
        keys = old_keys | new_keys
        touched = self._settle(keys) | {ref}
        for service in touched:
            self._refresh_conflicts(service)
        return DesiredChange(frozenset(keys), frozenset(touched))

    def _settle(self, keys: Collection[ServiceKey]) -> set[ObjectRef]:
        """Decide the winner of each key among its claimants; the claimants involved."""
        claimants = {ref for key in keys for ref in self.claims.get(key, ())}
        settled = resolve(_restricted(self.results[ref], keys) for ref in claimants)
        for key in keys:
            winner = settled.owners.get(key)
            if winner is None:
                self._drop(key)
            else:
                self._set(key, settled.table.services[key], winner)
        return claimants

    def _set(self, key: ServiceKey, virtual: VirtualService, owner: ObjectRef) -> None:
        old = self.services.get(key)
        if old is None:
            self._addresses[key.address] += 1
        self.real_servers += len(virtual.reals) - (len(old.reals) if old is not None else 0)
        self.services[key] = virtual
        self.owners[key] = owner

    def _drop(self, key: ServiceKey) -> None:
        old = self.services.pop(key, None)
        if old is not None:
            self.real_servers -= len(old.reals)
            self._addresses[key.address] -= 1
            if not self._addresses[key.address]:
                del self._addresses[key.address]
        self.owners.pop(key, None)

    def _refresh_conflicts(self, ref: ObjectRef) -> None:
        """A Service's conflict rejections: ``resolve`` of its lost keys against their owners."""
        result = self.results.get(ref)
        lost = [vs.key for vs in result.services if self.owners.get(vs.key) != ref] if result is not None else []
        if result is None or not lost:
            self.conflicts.pop(ref, None)
            return
        winners: dict[ObjectRef, set[ServiceKey]] = {}
        for key in lost:
            winners.setdefault(self.owners[key], set()).add(key)
        contenders = [_restricted(result, lost)] + [_restricted(self.results[w], ks) for w, ks in winners.items()]
        self.conflicts[ref] = tuple(r for r in resolve(contenders).rejections if r.service == ref)

    def all_rejections(self) -> Mapping[ObjectRef, tuple[Rejection, ...]]:
        """Rejections of every Service that has any (for tests and full reports)."""
        refs: Iterable[ObjectRef] = set(self.conflicts) | {r for r, res in self.results.items() if res.rejections}
        return {ref: self.rejections(ref) for ref in refs}


def _restricted(result: ServiceResult, keys: Collection[ServiceKey]) -> ServiceResult:
    """A result that claims only ``keys`` and says nothing else (input to ``resolve`` for those keys)."""
    return replace(
        result,
        services=tuple(vs for vs in result.services if vs.key in keys),
        rejections=(),
        notices=(),
        pods={},
    )
