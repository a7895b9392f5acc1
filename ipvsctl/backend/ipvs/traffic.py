"""A stats dump over the lean socket: every service with its counters and rates, then each one's destinations.

What ``ipvsadm -Ln --stats --rate`` reads, decoded in full each time (the counters move with every packet, so
nothing of ``reread``'s memory would match). Blocking: the transport runs it in a thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ipvsctl.backend.ipvs.codec import (
    TrafficRecord,
    dest_dump_request,
    service_dump_request,
    service_key,
    traffic_record,
)
from ipvsctl.backend.ipvs.wire import (
    KeyedRequests,
    decode_dest_traffic_reply,
    decode_service_traffic_reply,
    encode_request,
)
from ipvsctl.backend.netlink.channel import NetlinkChannel
from ipvsctl.backend.netlink.collector import collector_paused
from ipvsctl.backend.netlink.message import NLM_F_DUMP, NLM_F_REQUEST, Buffer

__all__ = ["read_traffic"]


def read_traffic(channel: NetlinkChannel, *, family_id: int) -> list[TrafficRecord]:
    """One service dump and one destination dump per service the model can hold; a read that breaks off
    drains the socket (its leftovers must not answer a later exchange)."""
    dest_dumps = KeyedRequests(dest_dump_request, family_id=family_id, flags=NLM_F_REQUEST | NLM_F_DUMP)
    try:
        with collector_paused():  # tens of thousands of objects, none in a cycle (``netlink.collector``)
            message = encode_request(
                service_dump_request(), family_id=family_id, flags=NLM_F_REQUEST | NLM_F_DUMP, seq=channel.sequences(1)
            )
            services, _ = channel.dump(message, one=_service, context=None)
            records: list[TrafficRecord] = []
            for service in services:
                key = service_key(service)
                if key is None:
                    continue  # a protocol or family the model cannot hold: not the agent's
                message = dest_dumps.message(key, seq=channel.sequences(1))
                dests, _ = channel.dump(message, one=_dest, context=None)
                records.append(traffic_record(key, service, dests))
    except BaseException:
        channel.drain()
        raise
    return records


def _service(payload: Buffer, _context: None) -> Mapping[str, Any]:
    return decode_service_traffic_reply(payload)


def _dest(payload: Buffer, _context: None) -> Mapping[str, Any]:
    return decode_dest_traffic_reply(payload)
