"""Planner rules: in-place edits, drains, ownership, ordering."""

from __future__ import annotations

import netaddr
import pytest

from ipvsctl.model import (
    AddRealServer,
    AddVirtualService,
    ConnectionCounts,
    DeleteRealServer,
    DeleteVirtualService,
    EditRealServer,
    EditVirtualService,
    Forwarding,
    Operation,
    Persistence,
    Protocol,
    RealServer,
    ServiceKey,
    Table,
    VirtualService,
)
from ipvsctl.plan import Connections, Ownership, PlanError, Settled, apply_operations, plan

VIP = ServiceKey(Protocol.TCP, "203.0.113.10", 80)
UDP_VIP = ServiceKey(Protocol.UDP, "203.0.113.10", 53)
R1 = RealServer("198.51.100.10", 8080)
R2 = RealServer("198.51.100.20", 8080)
NONE = Ownership()
HELD = Ownership(addresses=frozenset({VIP.address}))  # the VIP is on the agent's interface: its services are ours


def vs(
    key: ServiceKey = VIP, *reals: RealServer, scheduler: str = "rr", persistence: Persistence | None = None
) -> VirtualService:
    return VirtualService(key=key, scheduler=scheduler, persistence=persistence, reals=reals)


def table(*services: VirtualService) -> Table:
    return Table.of(services)


def kinds(operations: tuple[Operation, ...]) -> list[str]:
    return [type(operation).__name__ for operation in operations]


def test_empty_to_desired_adds_service_then_reals() -> None:
    """From an empty table: the service is added before its real servers."""
    operations = plan(table(), table(vs(VIP, R1, R2)), ownership=HELD)
    assert kinds(operations) == ["AddVirtualService", "AddRealServer", "AddRealServer"]


def test_in_sync_is_empty() -> None:
    """A table equal to the desired one needs no operations."""
    assert plan(table(vs(VIP, R1)), table(vs(VIP, R1)), ownership=HELD) == ()


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(vs(VIP, R1, scheduler="mh"), id="scheduler"),
        pytest.param(vs(VIP, R1, persistence=Persistence(600, 32)), id="persistence-on"),
        pytest.param(vs(VIP, R1, persistence=Persistence(10800, 24)), id="netmask"),
    ],
)
def test_changed_settings_are_edited_in_place(changed: VirtualService) -> None:
    """Scheduler, timeout and netmask changes are one EditVirtualService, never delete + add."""
    current = table(vs(VIP, R1, persistence=Persistence(10800, 32)))
    operations = plan(current, table(changed), ownership=HELD)
    assert kinds(operations) == ["EditVirtualService"]


def test_changed_weight_is_edited_in_place() -> None:
    """A real server's weight change is an EditRealServer."""
    operations = plan(table(vs(VIP, R1.with_weight(5))), table(vs(VIP, R1)), ownership=HELD)
    assert operations == (EditRealServer(VIP, R1, previous=R1.with_weight(5)),)


def test_changed_forwarding_is_edited_in_place() -> None:
    """A real server switched to DR by hand is switched back to masquerading in place."""
    routed = RealServer(R1.address, R1.port, forwarding=Forwarding.ROUTE)
    operations = plan(table(vs(VIP, routed)), table(vs(VIP, R1)), ownership=HELD)
    assert kinds(operations) == ["EditRealServer"]


def test_removed_tcp_real_with_connections_is_drained() -> None:
    """A removed TCP real server with connections goes to weight 0 first."""
    counts: Connections = {(VIP, R2.key): ConnectionCounts(active=3, inactive=0)}
    operations = plan(table(vs(VIP, R1, R2)), table(vs(VIP, R1)), ownership=HELD, connections=counts)
    assert operations == (EditRealServer(VIP, R2.with_weight(0), previous=R2, drain=True),)


def test_removed_tcp_real_unknown_connections_is_drained() -> None:
    """Without connection counts (a save file), a removed TCP real server is drained, not deleted."""
    operations = plan(table(vs(VIP, R1, R2)), table(vs(VIP, R1)), ownership=HELD)
    assert kinds(operations) == ["EditRealServer"]


def test_draining_real_with_connections_waits() -> None:
    """A real server already at weight 0 with connections left is left alone."""
    counts: Connections = {(VIP, R2.key): ConnectionCounts(active=0, inactive=2)}
    current = table(vs(VIP, R1, R2.with_weight(0)))
    assert plan(current, table(vs(VIP, R1)), ownership=HELD, connections=counts) == ()


def test_drained_real_without_connections_is_deleted() -> None:
    """A draining real server whose connections are gone is deleted."""
    counts: Connections = {(VIP, R2.key): ConnectionCounts(active=0, inactive=0)}
    current = table(vs(VIP, R1, R2.with_weight(0)))
    assert plan(current, table(vs(VIP, R1)), ownership=HELD, connections=counts) == (
        DeleteRealServer(VIP, R2.with_weight(0)),
    )


def test_expired_drain_is_deleted_despite_connections() -> None:
    """A real server past its maximum drain time is deleted even with connections."""
    counts: Connections = {(VIP, R2.key): ConnectionCounts(active=4, inactive=0)}
    current = table(vs(VIP, R1, R2.with_weight(0)))
    operations = plan(current, table(vs(VIP, R1)), ownership=HELD, connections=counts, expired_drains=[(VIP, R2.key)])
    assert kinds(operations) == ["DeleteRealServer"]


def test_removed_udp_real_is_deleted_at_once() -> None:
    """UDP real servers are not drained: deleted at once."""
    operations = plan(table(vs(UDP_VIP, R1, R2)), table(vs(UDP_VIP, R1)), ownership=HELD)
    assert operations == (DeleteRealServer(UDP_VIP, R2),)


def test_returning_real_is_restored_from_drain() -> None:
    """A draining real server that is wanted again gets its weight back."""
    operations = plan(table(vs(VIP, R1.with_weight(0))), table(vs(VIP, R1)), ownership=HELD)
    assert operations == (EditRealServer(VIP, R1, previous=R1.with_weight(0)),)


def test_foreign_service_survives() -> None:
    """A virtual service the agent does not own is never deleted."""
    foreign = vs(ServiceKey(Protocol.TCP, "192.0.2.200", 443), R1)
    assert plan(table(foreign), table(), ownership=NONE) == ()


@pytest.mark.parametrize(
    ("ownership", "key"),
    [
        pytest.param(
            Ownership(addresses=frozenset({"192.0.2.200"})), ServiceKey(Protocol.TCP, "192.0.2.200", 1), id="address"
        ),
        pytest.param(
            Ownership(cidrs=netaddr.IPSet(["192.0.2.0/24"])), ServiceKey(Protocol.TCP, "192.0.2.7", 80), id="cidr"
        ),
        pytest.param(
            Ownership(node_addresses=frozenset({"192.0.2.11"})),
            ServiceKey(Protocol.UDP, "192.0.2.11", 30000),
            id="node-port",
        ),
    ],
)
def test_owned_stale_service_is_deleted(ownership: Ownership, key: ServiceKey) -> None:
    """A stale virtual service inside the owned set is deleted."""
    operations = plan(table(vs(key, R1)), table(), ownership=ownership)
    assert operations == (DeleteVirtualService(vs(key)),)


def test_node_ip_outside_node_port_range_is_foreign() -> None:
    """A node IP at a port outside the node-port range (e.g. sshd's load balancer) is not owned."""
    ownership = Ownership(node_addresses=frozenset({"192.0.2.11"}))
    assert plan(table(vs(ServiceKey(Protocol.TCP, "192.0.2.11", 22), R1)), table(), ownership=ownership) == ()


def test_node_port_does_not_claim_the_whole_node_ip() -> None:
    """Wanting a NodePort on a node IP does not make a hand-made service on its port 22 ours."""
    ownership = Ownership(node_addresses=frozenset({"192.0.2.11"}))
    ssh = vs(ServiceKey(Protocol.TCP, "192.0.2.11", 22), R1)
    node_port = vs(ServiceKey(Protocol.TCP, "192.0.2.11", 30443), R1)
    assert plan(table(ssh, node_port), table(node_port), ownership=ownership) == ()


def test_fwmark_services_are_never_owned() -> None:
    """Firewall-mark services are foreign even inside an owned CIDR."""
    ownership = Ownership(cidrs=netaddr.IPSet(["0.0.0.0/0"]))
    assert plan(table(vs(ServiceKey.fwmark(7), R1)), table(), ownership=ownership) == ()


def test_desired_vip_at_a_foreign_entry_is_not_edited() -> None:
    """A desired key that a foreign entry holds (its address not the agent's) is never edited."""
    current = table(vs(VIP, R1, scheduler="wlc"))
    assert plan(current, table(vs(VIP, R1, R2)), ownership=NONE) == ()


def test_refused_key_is_planned_as_unwanted() -> None:
    """A refused desired key is neither added nor, when foreign, touched; an owned one is deleted."""
    other = ServiceKey(Protocol.TCP, "203.0.113.11", 80)
    operations = plan(table(vs(VIP, R1)), table(vs(VIP, R1, R2), vs(other, R1)), ownership=HELD, refused={VIP, other})
    assert operations == (DeleteVirtualService(vs(VIP)),)


def test_only_limits_plan_to_given_keys() -> None:
    """An incremental plan touches only the keys it is given."""
    other = ServiceKey(Protocol.TCP, "203.0.113.11", 80)
    operations = plan(table(), table(vs(VIP, R1), vs(other, R1)), ownership=HELD, only=[other])
    assert {operation.key for operation in operations} == {other}


def test_settled_remembers_an_equal_pair() -> None:
    """A pair found equal is remembered under its key, as the very two objects compared."""
    have, want = vs(VIP, R1), vs(VIP, R1)
    settled: Settled = {}
    plan(table(have), table(want), ownership=HELD, settled=settled)
    assert settled[VIP][0] is have
    assert settled[VIP][1] is want


def test_settled_forgets_a_pair_that_differs_again() -> None:
    """A key whose current and desired services differ is no longer remembered as settled."""
    settled: Settled = {}
    plan(table(vs(VIP, R1)), table(vs(VIP, R1)), ownership=HELD, settled=settled)
    operations = plan(table(vs(VIP, R1)), table(vs(VIP, R2)), ownership=HELD, settled=settled)
    assert VIP not in settled
    assert kinds(operations) == ["AddRealServer", "EditRealServer"]


def test_settled_drops_keys_gone_from_the_tables() -> None:
    """A full plan drops remembered keys that are no longer in both tables."""
    other = ServiceKey(Protocol.TCP, "203.0.113.11", 80)
    settled: Settled = {}
    plan(table(vs(VIP), vs(other)), table(vs(VIP), vs(other)), ownership=HELD, settled=settled)
    plan(table(vs(VIP)), table(vs(VIP)), ownership=HELD, settled=settled)
    assert set(settled) == {VIP}


def test_deleting_service_carries_its_reals() -> None:
    """A deleted virtual service is one operation, not one per real server."""
    ownership = Ownership(addresses=frozenset({VIP.address}))
    assert kinds(plan(table(vs(VIP, R1, R2)), table(), ownership=ownership)) == ["DeleteVirtualService"]


def test_apply_rejects_duplicate_add() -> None:
    """Applying an add of an existing service fails as the kernel would (EEXIST)."""
    with pytest.raises(PlanError, match="exists"):
        apply_operations(table(vs(VIP)), [AddVirtualService(vs(VIP))])


def test_apply_rejects_missing_real() -> None:
    """Deleting a real server that is not there fails (ENOENT)."""
    with pytest.raises(PlanError, match="no such real server"):
        apply_operations(table(vs(VIP)), [DeleteRealServer(VIP, R1)])


def test_apply_rejects_real_for_missing_service() -> None:
    """Adding a real server to a missing service fails (ESRCH)."""
    with pytest.raises(PlanError, match="no such virtual service"):
        apply_operations(table(), [AddRealServer(VIP, R1)])


def test_apply_edit_keeps_reals() -> None:
    """Editing a service's settings keeps its real servers."""
    after = apply_operations(table(vs(VIP, R1)), [EditVirtualService(vs(VIP, scheduler="mh"), previous=vs(VIP))])
    assert after == table(vs(VIP, R1, scheduler="mh"))
