"""The IPVS generic-netlink vocabulary, as data: commands, attribute tables, flag bits (``include/uapi/linux/ip_vs.h``).

Pure (no I/O). ``wire`` compiles the tables into packers and readers; ``codec`` turns model values into
attribute values and back. Facts followed (kernel 6.1, measured in the lab):

- Forwarding codes: masq 0, tunnel 2, route 3 (``IP_VS_CONN_F_*``; 1 is "local node", read as masq).
- Service flags: persistent 0x1, hashed 0x2 (added by the kernel, ignored here), one-packet 0x4,
  scheduler flags 0x8/0x10/0x20. They are sent with an all-ones mask: a ``SET`` replaces them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = [
    "ADDRESS",
    "BE16",
    "COMMAND_ATTRIBUTES",
    "DEST_ATTRIBUTES",
    "DEST_STATS_NESTS",
    "DOTTED",
    "FAMILY_NAME",
    "FAMILY_OF",
    "FLAGS",
    "GENL_VERSION",
    "NAME",
    "NESTED",
    "NESTS",
    "SERVICE_ATTRIBUTES",
    "SERVICE_STATS_NESTS",
    "STATS64_ATTRIBUTES",
    "STATS_ATTRIBUTES",
    "STATS_COUNTERS",
    "STATS_FIELDS",
    "TIMEOUT_ATTRIBUTES",
    "TRAFFIC",
    "TRAFFIC_COUNTERS",
    "U8",
    "U16",
    "U32",
    "U64",
    "Table",
]

FAMILY_NAME: Final = "IPVS"  # IPVS_GENL_NAME, the generic-netlink family
GENL_VERSION: Final = 1  # IPVS_GENL_VERSION

# Commands (enum ipvs_cmd).
CMD_NEW_SERVICE, CMD_SET_SERVICE, CMD_DEL_SERVICE, CMD_GET_SERVICE = 1, 2, 3, 4
CMD_NEW_DEST, CMD_SET_DEST, CMD_DEL_DEST, CMD_GET_DEST = 5, 6, 7, 8
CMD_SET_CONFIG, CMD_GET_CONFIG = 12, 13  # the connection timeouts; GET_CONFIG's reply comes as SET_CONFIG

# Service flags (IP_VS_SVC_F_*).
FLAG_PERSISTENT: Final = 0x1
FLAG_ONEPACKET: Final = 0x4
SCHED_FLAG_SHIFT: Final = 3  # IP_VS_SVC_F_SCHED1 is 0x8
ALL_FLAGS: Final = 0xFFFFFFFF

# Forwarding methods (IP_VS_CONN_F_FWD_MASK and its codes).
FORWARDING_MASK: Final = 0x7
MASQ, LOCAL_NODE, TUNNEL, ROUTE = 0, 1, 2, 3

# Encoding kinds. Numbers are host order except BE16 (ports, as the kernel's nla_get_be16 reads them).
U8, U16, U32, U64, BE16 = "u8", "u16", "u32", "u64", "be16"
FLAGS = "flags"  # struct ip_vs_flags {u32 flags; u32 mask}; read back as the flags alone
ADDRESS = "address"  # union nf_inet_addr: 4 or 16 bytes sent, 16 read back, per the family attribute
DOTTED = "dotted"  # a u32 shown as a dotted quad (the netmask; for IPv6 a prefix length, see codec)
NAME = "name"  # NUL-terminated string
NESTED = "nested"  # nested attributes of the table named in NESTS

Table = Mapping[str, tuple[int, str]]
"""Attribute name → (nla type number, encoding kind)."""

# The attribute tables: enum order of include/uapi/linux/ip_vs.h. Unlisted numbers are skipped on read.
STATS_ATTRIBUTES: Table = {
    "IPVS_STATS_ATTR_CONNS": (1, U32),
    "IPVS_STATS_ATTR_INPKTS": (2, U32),
    "IPVS_STATS_ATTR_OUTPKTS": (3, U32),
    "IPVS_STATS_ATTR_INBYTES": (4, U64),
    "IPVS_STATS_ATTR_OUTBYTES": (5, U64),
    "IPVS_STATS_ATTR_CPS": (6, U32),
    "IPVS_STATS_ATTR_INPPS": (7, U32),
    "IPVS_STATS_ATTR_OUTPPS": (8, U32),
    "IPVS_STATS_ATTR_INBPS": (9, U32),
    "IPVS_STATS_ATTR_OUTBPS": (10, U32),
}  # 11 is IPVS_STATS_ATTR_PAD: alignment filler for the u64 values
STATS64_ATTRIBUTES: Table = {name: (number, U64) for name, (number, _) in STATS_ATTRIBUTES.items()}
SERVICE_ATTRIBUTES: Table = {
    "IPVS_SVC_ATTR_AF": (1, U16),
    "IPVS_SVC_ATTR_PROTOCOL": (2, U16),
    "IPVS_SVC_ATTR_ADDR": (3, ADDRESS),
    "IPVS_SVC_ATTR_PORT": (4, BE16),
    "IPVS_SVC_ATTR_FWMARK": (5, U32),
    "IPVS_SVC_ATTR_SCHED_NAME": (6, NAME),
    "IPVS_SVC_ATTR_FLAGS": (7, FLAGS),
    "IPVS_SVC_ATTR_TIMEOUT": (8, U32),
    "IPVS_SVC_ATTR_NETMASK": (9, DOTTED),
    "IPVS_SVC_ATTR_STATS": (10, NESTED),
    "IPVS_SVC_ATTR_PE_NAME": (11, NAME),
    "IPVS_SVC_ATTR_STATS64": (12, NESTED),
}
DEST_ATTRIBUTES: Table = {
    "IPVS_DEST_ATTR_ADDR": (1, ADDRESS),
    "IPVS_DEST_ATTR_PORT": (2, BE16),
    "IPVS_DEST_ATTR_FWD_METHOD": (3, U32),
    "IPVS_DEST_ATTR_WEIGHT": (4, U32),
    "IPVS_DEST_ATTR_U_THRESH": (5, U32),
    "IPVS_DEST_ATTR_L_THRESH": (6, U32),
    "IPVS_DEST_ATTR_ACTIVE_CONNS": (7, U32),
    "IPVS_DEST_ATTR_INACT_CONNS": (8, U32),
    "IPVS_DEST_ATTR_PERSIST_CONNS": (9, U32),
    "IPVS_DEST_ATTR_STATS": (10, NESTED),
    "IPVS_DEST_ATTR_ADDR_FAMILY": (11, U16),
    "IPVS_DEST_ATTR_STATS64": (12, NESTED),
    "IPVS_DEST_ATTR_TUN_TYPE": (13, U8),
    "IPVS_DEST_ATTR_TUN_PORT": (14, BE16),  # the kernel's nla_put_be16 (pyroute2 says host-order uint16)
    "IPVS_DEST_ATTR_TUN_FLAGS": (15, U16),
}
COMMAND_ATTRIBUTES: Table = {
    "IPVS_CMD_ATTR_SERVICE": (1, NESTED),
    "IPVS_CMD_ATTR_DEST": (2, NESTED),
    "IPVS_CMD_ATTR_TIMEOUT_TCP": (4, U32),  # 3 (DAEMON) has no use here
    "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN": (5, U32),
    "IPVS_CMD_ATTR_TIMEOUT_UDP": (6, U32),
}
TIMEOUT_ATTRIBUTES: tuple[str, ...] = (
    "IPVS_CMD_ATTR_TIMEOUT_TCP",
    "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN",
    "IPVS_CMD_ATTR_TIMEOUT_UDP",
)
"""The timeouts of SET_CONFIG and GET_CONFIG (top-level u32 seconds), in ``IpvsTimeouts``'s field order."""
NESTS: Mapping[str, Table] = {
    "IPVS_CMD_ATTR_SERVICE": SERVICE_ATTRIBUTES,
    "IPVS_CMD_ATTR_DEST": DEST_ATTRIBUTES,
    "IPVS_SVC_ATTR_STATS": STATS_ATTRIBUTES,
    "IPVS_SVC_ATTR_STATS64": STATS64_ATTRIBUTES,
    "IPVS_DEST_ATTR_STATS": STATS_ATTRIBUTES,
    "IPVS_DEST_ATTR_STATS64": STATS64_ATTRIBUTES,
}
"""The table of each nested attribute."""
FAMILY_OF: Mapping[str, str] = {
    "IPVS_SVC_ATTR_ADDR": "IPVS_SVC_ATTR_AF",
    "IPVS_DEST_ATTR_ADDR": "IPVS_DEST_ATTR_ADDR_FAMILY",
}
"""The attribute that gives each address attribute's family (how many of its 16 bytes are the address)."""

DEST_STATS_NESTS: tuple[str, ...] = ("IPVS_DEST_ATTR_STATS64", "IPVS_DEST_ATTR_STATS")
"""A destination's counters, in order of preference (64-bit when the kernel sends them). Decoded, the chosen
one's counters are under the last name, ``IPVS_DEST_ATTR_STATS``."""
STATS_FIELDS: Mapping[str, str] = {
    "connections": "IPVS_STATS_ATTR_CONNS",
    "packets_in": "IPVS_STATS_ATTR_INPKTS",
    "packets_out": "IPVS_STATS_ATTR_OUTPKTS",
    "bytes_in": "IPVS_STATS_ATTR_INBYTES",
    "bytes_out": "IPVS_STATS_ATTR_OUTBYTES",
}
"""The counters the model keeps: each field of ``RealServerStats``, in its order, and its attribute."""
STATS_COUNTERS: tuple[str, ...] = tuple(STATS_FIELDS.values())
"""Those counters' attributes, in ``RealServerStats``'s order."""
TRAFFIC_COUNTERS: tuple[str, ...] = tuple(STATS_ATTRIBUTES)
"""Every counter and rate of a stats nest, in ``Traffic``'s field order (the kernel's enum order)."""
SERVICE_STATS_NESTS: tuple[str, ...] = ("IPVS_SVC_ATTR_STATS64", "IPVS_SVC_ATTR_STATS")
"""A service's counters, in order of preference (64-bit when the kernel sends them)."""
TRAFFIC: Final = "traffic"
"""Where a traffic decoding puts the chosen stats nest's counters (``TRAFFIC_COUNTERS``, absent ones left out)."""
