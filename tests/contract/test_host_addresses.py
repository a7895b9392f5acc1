"""The memory fake's host addresses (the kernel's are in tests/kernel/test_cleanup_node_ports.py): what it was
given, without the addresses on the agent's own interface."""

from __future__ import annotations

from ipvsctl.backend.memory import MemoryBackend


async def test_the_fake_reports_the_host_addresses_it_was_given() -> None:
    """Given addresses, canonical (an IPv6 address written long comes back short)."""
    memory = MemoryBackend(host_addresses=["192.0.2.1", "2001:db8:0:0::1"])
    assert await memory.host_addresses() == {"192.0.2.1", "2001:db8::1"}


async def test_addresses_on_the_agents_interface_are_not_the_hosts() -> None:
    """An address bound on the agent's interface (a VIP) is not a host address."""
    memory = MemoryBackend(host_addresses=["192.0.2.1", "203.0.113.10"])
    await memory.bind_addresses(["203.0.113.10"])
    assert await memory.host_addresses() == {"192.0.2.1"}
