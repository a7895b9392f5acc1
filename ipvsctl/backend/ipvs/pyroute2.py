"""The reference IPVS transport: pyroute2's ``AsyncIPVS`` and its ``ipvsmsg`` nla map, one request at a time.

Slow (15-30x ``ipvsadm``: pyroute2's encoding and decoding) but independent of ``wire``: the contract suite
runs on it as well as on the lean transport, and the wire tests compare against it. The only module of the
project that imports pyroute2 (an import-linter contract); a ``NetlinkError`` becomes a ``KernelRefusalError``
here, a value pyroute2 decoded into an unexpected type a ``WireFormatError``.

pyroute2 types the timeout attributes of SET_CONFIG/GET_CONFIG as ``hex``: it sends the bytes it is given and
reads them back as ``"84:03:00:00"``. They are the kernel's host-order u32 seconds, packed and unpacked here.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Sequence
from typing import Any

from pyroute2.ipvs import AsyncIPVS
from pyroute2.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic.ipvs import GENL_VERSION, ipvsmsg

from ipvsctl.backend.base import IpvsTimeouts
from ipvsctl.backend.ipvs.attributes import (
    DEST_STATS_NESTS,
    SERVICE_STATS_NESTS,
    STATS_COUNTERS,
    TIMEOUT_ATTRIBUTES,
    TRAFFIC,
    TRAFFIC_COUNTERS,
)
from ipvsctl.backend.ipvs.codec import (
    Request,
    ServiceRecord,
    TrafficRecord,
    decode_dest,
    decode_service,
    decode_timeouts,
    dest_dump_request,
    record,
    request_for,
    service_dump_request,
    service_get_request,
    service_key,
    timeouts_get_request,
    traffic_record,
)
from ipvsctl.backend.ipvs.transport import NO_IPVS
from ipvsctl.backend.netlink.message import KernelRefusalError, WireFormatError
from ipvsctl.errors import BackendError
from ipvsctl.model import Operation, ServiceKey

__all__ = ["Pyroute2Transport", "open_pyroute2"]


async def open_pyroute2(descriptor: int) -> Pyroute2Transport:
    """The transport over pyroute2's ``AsyncIPVS`` on an open generic-netlink socket (closed on failure);
    BackendError without IPVS (pyroute2 resolves the family itself)."""
    try:
        ipvs = AsyncIPVS(fileno=descriptor)
    except BaseException:
        os.close(descriptor)
        raise
    try:
        await ipvs.setup_endpoint()
    except NetlinkError as error:
        ipvs.close()
        raise BackendError(NO_IPVS, target="IPVS", errno=error.code) from error
    except BaseException:
        ipvs.close()
        raise
    return Pyroute2Transport(ipvs)


class Pyroute2Transport:
    """The transport over pyroute2's ``AsyncIPVS``: one request, one answer."""

    def __init__(self, ipvs: Any) -> None:
        self._ipvs = ipvs  # pyroute2 AsyncIPVS, untyped: kept inside this class

    async def read(self, only: Sequence[ServiceKey] | None) -> list[ServiceRecord]:
        """Dump (or get, per key) the services, then dump each one's destinations."""
        if only is None:
            answers = await self._exchange(service_dump_request(), dump=True)
        else:
            answers = []
            for key in only:
                try:
                    answers.extend(await self._exchange(service_get_request(key), dump=False))
                except KernelRefusalError as refusal:
                    if refusal.errno != errno.ESRCH:
                        raise
        records: list[ServiceRecord] = []
        for answer in answers:
            service = decode_service(_attributes(answer.get_attr("IPVS_CMD_ATTR_SERVICE")))
            if service is None:
                continue
            dests = await self._exchange(dest_dump_request(service.key), dump=True)
            decoded = [decode_dest(_attributes(dest.get_attr("IPVS_CMD_ATTR_DEST")), key=service.key) for dest in dests]
            records.append(record(service, decoded))
        return records

    async def traffic(self) -> list[TrafficRecord]:
        """A stats dump: the services, then each one's destinations, with every counter and rate."""
        records: list[TrafficRecord] = []
        for answer in await self._exchange(service_dump_request(), dump=True):
            service = _attributes(answer.get_attr("IPVS_CMD_ATTR_SERVICE"), traffic=SERVICE_STATS_NESTS)
            key = service_key(service)
            if key is None:
                continue
            dests = await self._exchange(dest_dump_request(key), dump=True)
            decoded = [_attributes(dest.get_attr("IPVS_CMD_ATTR_DEST"), traffic=DEST_STATS_NESTS) for dest in dests]
            records.append(traffic_record(key, service, decoded))
        return records

    async def service_keys(self) -> list[ServiceKey]:
        """One service dump, no destinations."""
        answers = await self._exchange(service_dump_request(), dump=True)
        services = (decode_service(_attributes(answer.get_attr("IPVS_CMD_ATTR_SERVICE"))) for answer in answers)
        return [service.key for service in services if service is not None]

    async def execute(self, requests: Sequence[Request]) -> list[int]:
        """Send the requests one by one, each waiting for its acknowledgement."""
        results: list[int] = []
        for request in requests:
            try:
                await self._exchange(request, dump=False, ack=True)
            except KernelRefusalError as refusal:
                results.append(refusal.errno)
            else:
                results.append(0)
        return results

    async def perform(self, operations: Sequence[Operation]) -> list[int]:
        """``execute`` of the operations' requests."""
        return await self.execute([request_for(operation) for operation in operations])

    async def timeouts(self) -> IpvsTimeouts:
        """One GET_CONFIG."""
        answers = await self._exchange(timeouts_get_request(), dump=False)
        if len(answers) != 1:
            raise WireFormatError(f"GET_CONFIG answered with {len(answers)} replies, not one")
        return decode_timeouts(_timeouts(answers[0]))

    def close(self) -> None:
        """Close pyroute2's socket."""
        self._ipvs.close()

    async def _exchange(self, request: Request, *, dump: bool, ack: bool = False) -> list[Any]:
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0) | (NLM_F_ACK if ack else 0)
        try:
            answers = await self._ipvs.nlm_request(_message(request), msg_type=self._ipvs.prid, msg_flags=flags)
            return [answer async for answer in answers]
        except NetlinkError as error:
            raise KernelRefusalError(error.code) from error


_U32 = struct.Struct("=I")


def _message(request: Request) -> Any:
    """The pyroute2 ``ipvsmsg`` of a request (its nla map does the encoding; timeouts go as its ``hex`` bytes)."""
    message = ipvsmsg()
    message["cmd"] = request.command
    message["version"] = GENL_VERSION
    message["attrs"] = [
        (name, _U32.pack(value) if name in TIMEOUT_ATTRIBUTES else value) for name, value in request.attributes
    ]
    return message


def _timeouts(answer: Any) -> dict[str, object]:
    """The timeout attributes of a GET_CONFIG reply, from pyroute2's hex text back to numbers."""
    attributes: dict[str, object] = {}
    for name in TIMEOUT_ATTRIBUTES:
        text = answer.get_attr(name)
        if text is None:
            continue
        try:
            attributes[name] = _U32.unpack(bytes.fromhex(str(text).replace(":", "")))[0]
        except (ValueError, struct.error) as error:
            raise WireFormatError(f"{name}: not a u32: {text!r}") from error
    return attributes


def _attributes(nested: Any, *, traffic: Sequence[str] = ()) -> dict[str, object]:
    """A dumped service or destination as plain values: flags as an int, stats as a mapping.

    pyroute2 decodes an attribute when its value is first touched; decoding every stats attribute of
    thousands of destinations dominated ``read``, so only the values used are touched: the counters
    the model keeps, from the preferred stats nest (``DEST_STATS_NESTS``), under ``IPVS_DEST_ATTR_STATS``.
    With ``traffic`` (stats nests in order of preference), a stats dump's: every counter and rate of the
    preferred one under ``TRAFFIC``.
    """
    slots = {slot.name: slot for slot in nested["attrs"]}
    attributes: dict[str, object] = {}
    for name, slot in slots.items():
        if name == "IPVS_SVC_ATTR_FLAGS":
            attributes[name] = int(slot.value["flags"])
        elif not name.endswith(("_ATTR_STATS", "_ATTR_STATS64")):
            value = slot.value
            if not isinstance(value, int | str):  # the decoders trust types (codec)
                raise WireFormatError(f"{name}: expected a number or text, got {value!r}")
            attributes[name] = value
    if traffic:
        nest = next((slots[name] for name in traffic if name in slots), None)
        counters = {} if nest is None else {counter.name: counter for counter in nest.value["attrs"]}
        attributes[TRAFFIC] = {name: int(counters[name].value) for name in TRAFFIC_COUNTERS if name in counters}
    stats = next((slots[name] for name in DEST_STATS_NESTS if name in slots), None)
    if stats is not None:
        counters = {counter.name: counter for counter in stats.value["attrs"]}
        attributes[DEST_STATS_NESTS[-1]] = {
            name: int(counters[name].value) for name in STATS_COUNTERS if name in counters
        }
    return attributes
