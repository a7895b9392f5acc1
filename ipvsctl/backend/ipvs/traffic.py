"""A stats dump over the lean socket: every service with its counters and rates, then each one's destinations.

What ``ipvsadm -Ln --stats --rate`` reads, decoded in full each time (the counters move with every packet, so
nothing of ``reread``'s memory would match). Blocking: the transport runs it in a thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ipvsctl.backend.ipvs.codec import (
    Request,
    TrafficRecord,
    decode_service,
    dest_dump_request,
    service_dump_request,
    traffic_record,
)
from ipvsctl.backend.ipvs.wire import decode_dest_traffic_reply, decode_service_traffic_reply, encode_request
from ipvsctl.backend.netlink.channel import NetlinkChannel
from ipvsctl.backend.netlink.message import NLM_F_DUMP, NLM_F_REQUEST, Buffer

__all__ = ["read_traffic"]


def read_traffic(channel: NetlinkChannel, *, family_id: int) -> list[TrafficRecord]:
    """One service dump and one destination dump per service the model can hold; a read that breaks off
    drains the socket (its leftovers must not answer a later exchange)."""
    try:
        services, _ = channel.dump(_message(channel, service_dump_request(), family_id), one=_service, context=None)
        records: list[TrafficRecord] = []
        for service in services:
            decoded = decode_service(service)
            if decoded is None:
                continue  # a protocol or family the model cannot hold: not the agent's
            message = _message(channel, dest_dump_request(decoded.key), family_id)
            dests, _ = channel.dump(message, one=_dest, context=None)
            found = traffic_record(service, dests)
            if found is not None:
                records.append(found)
    except BaseException:
        channel.drain()
        raise
    return records


def _service(payload: Buffer, _context: None) -> Mapping[str, Any]:
    return decode_service_traffic_reply(payload)


def _dest(payload: Buffer, _context: None) -> Mapping[str, Any]:
    return decode_dest_traffic_reply(payload)


def _message(channel: NetlinkChannel, request: Request, family_id: int) -> bytes:
    return encode_request(request, family_id=family_id, flags=NLM_F_REQUEST | NLM_F_DUMP, seq=channel.sequences(1))
