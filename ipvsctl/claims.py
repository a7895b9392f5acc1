"""Which VIP addresses the agent may take: ownership at virtual-service granularity (pure).

The agent owns an address once it holds it on its own interface, and then every virtual service
at that address (``plan.Ownership``). Before it takes a new address it looks at the kernel: a
virtual service already there at any port is someone else's (keepalived's, a hand-made one) —
nothing of the agent's can be at an address it does not hold, because it binds an address before
it adds a service on it and unbinds it only after the last one is gone. Such an address is
refused: every desired key on it is left out of the plan, with a reason for its Service. Taking
the address would make the foreign services the agent's, to be edited or deleted at the next sync.

Node addresses are never taken (only their NodePorts, inside the node-port range, are the
agent's), and firewall-mark services are never anyone's concern here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ipvsctl.model import ServiceKey
from ipvsctl.plan import Ownership

__all__ = ["Claims", "claim", "presumed_held", "unclaimed_addresses"]

_NAMED = 3  # foreign services named in a reason; the rest are counted


@dataclass(frozen=True, slots=True)
class Claims:
    """The outcome of claiming: addresses to take (bind) now, and desired keys refused, with why."""

    taken: frozenset[str] = frozenset()
    refused: Mapping[ServiceKey, str] = field(default_factory=dict)


def unclaimed_addresses(wanted: Iterable[ServiceKey], *, ownership: Ownership) -> set[str]:
    """Addresses of wanted keys the agent does not own yet: those the kernel must be asked about."""
    return {key.address for key in wanted if not ownership.owns(key) and not key.is_fwmark}


def claim(wanted: Iterable[ServiceKey], *, present: Iterable[ServiceKey], ownership: Ownership) -> Claims:
    """Claim the addresses of ``wanted`` keys (desired keys in scope) that ``ownership`` does not cover.

    ``present`` are the kernel's keys: the whole table, or at least every key at the unclaimed
    addresses (``unclaimed_addresses``). An unclaimed address is taken when no virtual service is
    there; else every wanted key on it is refused, as is any wanted key on a node address.
    """
    asking: dict[str, list[ServiceKey]] = defaultdict(list)
    for key in wanted:
        if not key.is_fwmark and not ownership.owns(key):
            asking[key.address].append(key)
    if not asking:
        return Claims()
    foreign: dict[str, list[ServiceKey]] = defaultdict(list)
    for key in present:
        if key.address in asking and not ownership.owns(key):
            foreign[key.address].append(key)
    refused: dict[ServiceKey, str] = {}
    for address, keys in asking.items():
        if address in ownership.node_addresses:
            why = f"{address} is a node address: only NodePorts inside the node-port range may use it"
        elif address in foreign:
            why = _foreign_reason(address, foreign[address])
        else:
            continue
        for key in keys:
            refused[key] = why
    return Claims(taken=frozenset(asking) - {key.address for key in refused}, refused=refused)


def _foreign_reason(address: str, keys: list[ServiceKey]) -> str:
    keys.sort(key=ServiceKey.sort_key)
    named = ", ".join(str(key) for key in keys[:_NAMED])
    more = f" and {len(keys) - _NAMED} more" if len(keys) > _NAMED else ""
    return f"{address} carries virtual services ipvsctl does not own ({named}{more}); this VIP is not programmed"


def presumed_held(current: Iterable[ServiceKey], desired: Mapping[ServiceKey, object]) -> set[str]:
    """For a saved table, with no interface to ask: the addresses the agent presumably holds.

    An address counts as held when something is at it and every key at it is desired: a node in
    sync then plans nothing. A stale port at an address (a Service that changed its port) makes the
    address look foreign; ``ipvsctl diff --bound-address`` states the truth instead.
    """
    at: dict[str, bool] = {}
    for key in current:
        if not key.is_fwmark:
            at[key.address] = at.get(key.address, True) and key in desired
    return {address for address, all_desired in at.items() if all_desired}
