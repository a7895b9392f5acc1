"""The agent's interface over one batching rtnetlink socket: its link, and binds and dumps of thousands of VIPs.

pyroute2 took 69 s to bind 10,000 VIPs in the lab and 14 s to dump them (its per-message encoding and
decoding); here ``addresses`` and ``links`` encode and decode and ``NetlinkChannel`` sends up to 256
requests per ``sendmsg``. Blocking calls (the kernel backend runs large ones in a worker thread); a request
the kernel refuses raises ``KernelRefusalError``, except the answers that mean it is done already.
"""

from __future__ import annotations

import errno
from collections.abc import Collection, Mapping, Sequence

from ipvsctl.backend.netlink.channel import BATCH, Encoder, NetlinkChannel
from ipvsctl.backend.netlink.message import (
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    Buffer,
    KernelRefusalError,
    Reply,
)
from ipvsctl.backend.netlink.netns import NETLINK_ROUTE
from ipvsctl.backend.rtnl.addresses import (
    RTM_DELADDR,
    RTM_NEWADDR,
    decode_address_reply,
    encode_address_dump,
    encode_address_request,
)
from ipvsctl.backend.rtnl.links import (
    RTM_DELLINK,
    RTM_GETLINK,
    RTM_NEWLINK,
    LinkReply,
    decode_link_reply,
    encode_link_request,
)

__all__ = ["GONE_ERRNOS", "Interface"]

GONE_ERRNOS = frozenset({errno.ENODEV, errno.EADDRNOTAVAIL, errno.ENOENT})
"""What the kernel answers a delete of something already gone: done, then."""
_RT_SCOPE_UNIVERSE = 0  # the agent's addresses; link-scope ones (IPv6 fe80::) are the kernel's
_IFA_F_NODAD = 0x02  # an IPv6 VIP is usable at once, without duplicate address detection


class Interface:
    """The interface named ``name``: its link and its addresses (blocking calls)."""

    def __init__(self, descriptor: int, *, name: str) -> None:
        """Over the rtnetlink socket ``descriptor``, which it owns (``NetlinkChannel``)."""
        self._channel = NetlinkChannel(descriptor, protocol=NETLINK_ROUTE, target=name)
        self._name = name

    def close(self) -> None:
        """Close the socket."""
        self._channel.close()

    # --- the link -------------------------------------------------------------------------------------

    def link(self) -> LinkReply | None:
        """The link of this name (its index, flags and kind), None when there is none."""
        try:
            (found,) = self._link_request(RTM_GETLINK, flags=NLM_F_REQUEST, name=self._name)
        except KernelRefusalError as refusal:
            if refusal.errno == errno.ENODEV:
                return None
            raise
        return found

    def create(self, kind: str) -> None:
        """Create the link with ``kind``; one of this name made meanwhile (EEXIST) is fine."""
        try:
            self._link_request(RTM_NEWLINK, flags=NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, name=self._name, kind=kind)
        except KernelRefusalError as refusal:
            if refusal.errno != errno.EEXIST:
                raise

    def set_up(self, index: int) -> None:
        """Bring the link ``index`` up."""
        self._link_request(RTM_NEWLINK, flags=NLM_F_REQUEST, index=index, up=True)

    def delete(self, index: int) -> None:
        """Delete the link ``index`` and every address on it; one gone already is fine."""
        try:
            self._link_request(RTM_DELLINK, flags=NLM_F_REQUEST, index=index)
        except KernelRefusalError as refusal:
            if refusal.errno not in GONE_ERRNOS:
                raise

    def _link_request(
        self, command: int, *, flags: int, index: int = 0, name: str = "", kind: str = "", up: bool = False
    ) -> list[LinkReply]:
        def encode(_index: int, seq: int, extra: int) -> bytes:
            return encode_link_request(command, seq=seq, flags=flags | extra, index=index, name=name, kind=kind, up=up)

        return self._channel.request(encode, _link_of)

    # --- its addresses --------------------------------------------------------------------------------

    def addresses(self, index: int) -> dict[str, int]:
        """The link's global-scope addresses, with their prefix lengths."""
        message = encode_address_dump(index=index, seq=self._channel.sequences(1))
        found, _ = self._channel.dump(message, one=_global_address, context=index)
        return dict(found)

    def other_addresses(self, index: int) -> frozenset[str]:
        """The global-scope addresses of every link but ``index`` (0: of every link): the host's own."""
        message = encode_address_dump(index=0, seq=self._channel.sequences(1))
        found, _ = self._channel.dump(message, one=_other_address, context=index)
        return frozenset(found)

    def add(self, index: int, addresses: Collection[str]) -> None:
        """Add /32 and /128 addresses (IPv6 without duplicate address detection); present ones are fine."""
        self._change(
            RTM_NEWADDR,
            index,
            [(address, 128 if ":" in address else 32) for address in sorted(addresses)],
            flags=NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL,
            tolerated=frozenset({errno.EEXIST}),
        )

    def remove(self, index: int, addresses: Mapping[str, int]) -> None:
        """Delete addresses (with their prefix lengths); absent ones are fine."""
        self._change(RTM_DELADDR, index, sorted(addresses.items()), flags=NLM_F_REQUEST, tolerated=GONE_ERRNOS)

    def _change(
        self, command: int, index: int, items: Sequence[tuple[str, int]], *, flags: int, tolerated: frozenset[int]
    ) -> None:
        for start in range(0, len(items), BATCH):
            chunk = items[start : start + BATCH]
            for _, reply in self._channel.batch(len(chunk), _address_encoder(command, index, chunk, flags)):
                if reply.error and reply.error not in tolerated:
                    raise KernelRefusalError(reply.error)


def _link_of(reply: Reply) -> LinkReply:
    return decode_link_reply(reply.payload)


def _global_address(payload: Buffer, index: int) -> tuple[str, int] | None:
    """The address of one reply of the dump, when it is a global-scope one of the link ``index``."""
    address = decode_address_reply(payload)
    if address.index == index and address.scope == _RT_SCOPE_UNIVERSE and address.address:
        return address.address, address.prefix
    return None


def _other_address(payload: Buffer, index: int) -> str | None:
    """The address of one reply of the dump, when it is a global-scope one of a link other than ``index``."""
    address = decode_address_reply(payload)
    if address.index != index and address.scope == _RT_SCOPE_UNIVERSE and address.address:
        return address.address
    return None


def _address_encoder(command: int, index: int, chunk: Sequence[tuple[str, int]], flags: int) -> Encoder:
    """Encodes the requests of one batch (IPv6 ones without duplicate address detection)."""

    def encode(position: int, seq: int, extra: int) -> bytes:
        address, prefix = chunk[position]
        nodad = _IFA_F_NODAD if prefix == 128 else 0
        return encode_address_request(
            command, index=index, address=address, prefix=prefix, flags=flags | extra, seq=seq, ifa_flags=nodad
        )

    return encode
