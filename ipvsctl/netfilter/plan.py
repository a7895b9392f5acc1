"""What the netfilter half wants for a desired table, kept one VIP key at a time (pure).

``NetfilterPlan`` reads the desired virtual services and their roles through the callables it is given
(the agent's desired state, or one command's translation) and keeps ``DesiredElements`` in step with
them: ``refresh`` of some keys (or all) answers the elements that appeared and vanished. A key's address
is under the VIP filter unless it is a node address; a refused key (``claims``) wants nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping

from ipvsctl.model import ServiceKey, VirtualService
from ipvsctl.netfilter.elements import DesiredElements, Element
from ipvsctl.translate import VipRole

__all__ = ["NetfilterPlan"]


class NetfilterPlan:
    """The desired elements of a node, refreshed from its desired table as keys change."""

    def __init__(
        self,
        *,
        services: Mapping[ServiceKey, VirtualService],
        role_of: Callable[[ServiceKey], VipRole | None],
        node_addresses: Callable[[], Collection[str]],
        cluster_families: Collection[int] = (),
    ) -> None:
        self._services = services
        self._role_of = role_of
        self._node_addresses = node_addresses
        self._elements = DesiredElements(cluster_families=cluster_families)
        self._keys: set[ServiceKey] = set()  # keys that contribute elements now

    def elements(self) -> DesiredElements:
        """Every element wanted now (a live view)."""
        return self._elements

    def refresh(
        self, keys: Iterable[ServiceKey] | None, *, refused: Collection[ServiceKey] = ()
    ) -> tuple[set[Element], set[Element]]:
        """Recompute the elements of ``keys`` (None: every key, gone ones included): (appeared, vanished)."""
        services = self._services
        # each key once, with its service; a key's hash is a Python call (a dataclass): as few lookups as can be
        if keys is None:
            scope = [*services.items(), *((key, None) for key in self._keys.difference(services))]
        else:
            scope = [(key, services.get(key)) for key in keys]
        node_addresses = self._node_addresses()
        update, role_of, contributing = self._elements.update, self._role_of, self._keys
        first = keys is None and not contributing  # nothing was wanted: all that is wanted now appeared
        before: dict[Element, bool] = {}  # each element touched: was it wanted before this refresh?
        for key, found in scope:
            service = None if refused and key in refused else found
            role = None if service is None else role_of(key)
            if role is None:
                contributing.discard(key)
            else:
                contributing.add(key)
            filtered = key.address not in node_addresses
            added, removed = update(key, service if role is not None else None, role, filtered=filtered)
            if not first:
                for element in added:
                    before.setdefault(element, False)
                for element in removed:
                    before.setdefault(element, True)
        wanted = self._elements.view()
        if first:
            return set(wanted), set()
        appeared = {element for element, was in before.items() if not was and element in wanted}
        vanished = {element for element, was in before.items() if was and element not in wanted}
        return appeared, vanished
