"""Backends that hold an IPVS table: the kernel over netlink, and a stateful in-memory fake."""
