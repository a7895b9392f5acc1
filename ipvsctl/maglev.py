"""The kernel's Maglev-hashing scheduler (``mh``) in pure Python, exactly as ``ip_vs_mh.c`` computes it.

What decides the lookup table (``ip_vs_mh_permutate`` / ``ip_vs_mh_populate``):

- the table size ``M``: ``primes[CONFIG_IP_VS_MH_TAB_INDEX - 8]``; Debian's and most distributions' kernels
  build with index 12, so M = 4093;
- the destination list **in the kernel's order** (``svc->destinations``: a new destination is put at the
  *head* of the list, an edit keeps its place, a deleted one that comes back from the trash is put at the
  head again): each destination takes, round-robin in list order, its next free slot of its own permutation
  (offset and skip from hsiphash of its address and port), so two destinations that want one slot get it
  in list order;
- each destination's ``last_weight``: the weight it was added with, or its latest *non-zero* weight. A
  server drained to weight 0 by an edit keeps its slots; one added with weight 0 has none. Turns per round
  are ``(last_weight / gcd) >> rshift`` (or 1), gcd and shift over all destinations.

What decides a client's choice (``ip_vs_mh_get`` / ``ip_vs_mh_get_fallback``): the slot
``hsiphash(client) % M`` (the client address, IPv6 folded by XOR; plus the source port with ``mh-port``);
a destination with weight <= 0 there is unavailable: without ``mh-fallback`` nothing is chosen, with it
the kernel rehashes the client with offsets 0.. until it meets an available destination.

On 64-bit kernels hsiphash is SipHash-1-3 over the 4-byte value, truncated to 32 bits (lib/siphash.c).
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from ipvsctl.model import RealServerKey, packed_address

__all__ = [
    "TABLE_SIZE",
    "Destination",
    "MaglevTable",
    "fold_address",
    "hsiphash32",
    "inputs_digest",
]

TABLE_SIZE = 4093  # primes[CONFIG_IP_VS_MH_TAB_INDEX - 8] with the default (and Debian's) index 12
_TABLE_BITS = 12 // 2  # IP_VS_MH_TAB_BITS
_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1
# generate_hash_secret in ip_vs_mh.c: fixed keys, so every node hashes alike.
_HASH1 = (2654435761, 2654435761)
_HASH2 = (2654446892, 2654446892)


def _rotl(value: int, shift: int) -> int:
    return ((value << shift) | (value >> (64 - shift))) & _MASK64


def _sipround(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _MASK64
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _MASK64
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _MASK64
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _MASK64
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def hsiphash32(value: int, *, key: tuple[int, int]) -> int:
    """The kernel's ``hsiphash(&value, 4, key)`` on a 64-bit machine (SipHash-1-3, low 32 bits)."""
    v0 = 0x736F6D6570736575 ^ key[0]
    v1 = 0x646F72616E646F6D ^ key[1]
    v2 = 0x6C7967656E657261 ^ key[0]
    v3 = 0x7465646279746573 ^ key[1]
    b = (4 << 56) | (value & _MASK32)  # no whole 8-byte word; the 4 bytes are the tail
    v3 ^= b
    v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0 ^= b
    v2 ^= 0xFF
    for _ in range(3):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return (v0 ^ v1 ^ v2 ^ v3) & _MASK32


def fold_address(address: str) -> int:
    """``ntohl`` of the address, IPv6 folded by XOR of its four 32-bit words (``ip_vs_mh_hashkey``)."""
    packed = packed_address(address)
    folded = 0
    for (word,) in struct.iter_unpack("!I", packed):
        folded ^= word
    return folded


def _hashkey(folded: int, port: int, *, key: tuple[int, int], offset: int = 0) -> int:
    return hsiphash32((offset + port + folded) & _MASK32, key=key)


@dataclass(frozen=True, slots=True)
class Destination:
    """One entry of ``svc->destinations`` as the table sees it.

    ``last_weight`` decides its slots (see the module docstring); ``weight`` whether it may be chosen.
    """

    address: str
    port: int
    weight: int = 1
    last_weight: int = 1

    @property
    def key(self) -> RealServerKey:
        """The real server it is."""
        return RealServerKey(self.address, self.port)


@dataclass(frozen=True, slots=True)
class MaglevTable:
    """A service's lookup table: the destination (an index into ``destinations``) of every slot, or -1."""

    destinations: tuple[Destination, ...]
    slots: tuple[int, ...]
    fallback: bool = False
    port: bool = False

    @classmethod
    def build(
        cls, destinations: Sequence[Destination], *, fallback: bool = False, port: bool = False, size: int = TABLE_SIZE
    ) -> MaglevTable:
        """Populate the table as ``ip_vs_mh_reassign`` does, ``destinations`` in the kernel's list order."""
        dests = tuple(destinations)
        weights = [d.last_weight for d in dests if d.last_weight > 0]
        gcd = math.gcd(*weights) if weights else 0
        if gcd < 1:
            return cls(dests, (-1,) * size, fallback, port)
        shift = max(0, (max(weights) // gcd).bit_length() - _TABLE_BITS)
        perm: list[int] = []
        skips: list[int] = []
        turns: list[int] = []
        for dest in dests:
            folded = fold_address(dest.address)
            perm.append(_hashkey(folded, dest.port, key=_HASH1) % size)
            skips.append(_hashkey(folded, dest.port, key=_HASH2) % (size - 1) + 1)
            lw = dest.last_weight
            turns.append(((lw // gcd) >> shift) or (1 if lw != 0 else 0))
        taken = bytearray(size)
        slots = [-1] * size
        filled = 0
        while True:
            for index in range(len(dests)):
                for _ in range(turns[index]):  # turns < 1: a destination added with weight 0 has no slot
                    c = perm[index]
                    while taken[c]:
                        c = (c + skips[index]) % size
                    perm[index] = c
                    taken[c] = 1
                    slots[c] = index
                    filled += 1
                    if filled == size:
                        return cls(dests, tuple(slots), fallback, port)

    def choose(self, client: str, *, client_port: int = 0) -> Destination | None:
        """The destination the kernel picks for a new connection from ``client`` (None: none available)."""
        size = len(self.slots)
        folded = fold_address(client)
        port = client_port if self.port else 0
        ihash = _hashkey(folded, port, key=_HASH1) % size
        index = self.slots[ihash]
        if index < 0:
            return None
        dest = self.destinations[index]
        if dest.weight > 0:
            return dest
        if not self.fallback:
            return None
        for offset in range(size):
            roffset = (offset + ihash) % size
            index = self.slots[_hashkey(folded, port, key=_HASH1, offset=roffset) % size]
            if index < 0:
                return None
            dest = self.destinations[index]
            if dest.weight > 0:
                return dest
        return None

    def shares(self) -> dict[RealServerKey, int]:
        """Slots per real server (its share of the clients that hash there first)."""
        counts: dict[RealServerKey, int] = {}
        for index in self.slots:
            if index >= 0:
                key = self.destinations[index].key
                counts[key] = counts.get(key, 0) + 1
        return counts


def inputs_digest(destinations: Sequence[Destination], *, fallback: bool, port: bool) -> str:
    """A short digest of everything the table and the choice depend on, in the kernel's list order.

    Two nodes with equal digests make the same choice for every client; different digests say that
    their tables (or which servers may be chosen) differ.
    """
    text = (
        "|".join(f"{d.address},{d.port},{d.weight},{d.last_weight}" for d in destinations)
        + f"|size={TABLE_SIZE}|fallback={int(fallback)}|port={int(port)}"
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]
