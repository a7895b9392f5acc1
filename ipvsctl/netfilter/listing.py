"""Reading and describing ipvsctl's nftables table (pure): ``nft -j list table inet ipvsctl`` in, elements out;
what the table does to each VIP, as on-call engineers read it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from ipvsctl.errors import InputError
from ipvsctl.model import Protocol, ServiceKey
from ipvsctl.netfilter.elements import Element, Kind, Value, set_name
from ipvsctl.netfilter.ruleset import FAMILY, TABLE

__all__ = ["Treatment", "changes_text", "element_line", "elements_from_json", "treatments"]

_SETS = {set_name(kind, family): kind for kind in Kind for family in (4, 6)}


@dataclass(frozen=True, slots=True)
class Treatment:
    """What ipvsctl's table does with a VIP's traffic."""

    filtered: bool = False  # its address is under the VIP filter, and its port let through
    masquerade: bool = False  # an external VIP of a Cluster-policy Service: source NAT to the node
    cluster_masquerade: bool = False  # a ClusterIP: source NAT unless from the pod network
    source_ranges: tuple[str, ...] | None = None  # only these sources get through (None: any)

    def describe(self) -> str:
        """``filter: open; masquerade; sources 192.0.2.0/24`` (empty when the table does nothing to it)."""
        parts = ["filter: open"] if self.filtered else []
        if self.masquerade:
            parts.append("masquerade")
        if self.cluster_masquerade:
            parts.append("masquerade from outside the pod network")
        if self.source_ranges is not None:
            parts.append("sources " + (", ".join(self.source_ranges) or "none (fails closed)"))
        return "; ".join(parts)


def treatments(elements: Iterable[Element]) -> dict[ServiceKey, Treatment]:
    """Each VIP key the elements mention, with what the table does to it."""
    flags: dict[ServiceKey, dict[str, object]] = {}
    ranges: dict[ServiceKey, list[str]] = {}
    for name, value in elements:
        kind = _SETS.get(name)
        if kind in (None, Kind.VIPS, Kind.HAIRPIN):
            continue
        key = ServiceKey(Protocol(str(value[1])), str(value[0]), int(value[2]))
        entry = flags.setdefault(key, {})
        if kind is Kind.SERVICES:
            entry["filtered"] = True
        elif kind is Kind.MASQUERADE:
            entry["masquerade"] = True
        elif kind is Kind.CLUSTER:
            entry["cluster_masquerade"] = True
        elif kind is Kind.RANGED:
            ranges.setdefault(key, [])
        elif kind is Kind.ALLOWED:
            ranges.setdefault(key, []).append(str(value[3]))
    result = {}
    for key, entry in flags.items():
        allowed = ranges.get(key)
        result[key] = Treatment(
            filtered=bool(entry.get("filtered")),
            masquerade=bool(entry.get("masquerade")),
            cluster_masquerade=bool(entry.get("cluster_masquerade")),
            source_ranges=None if allowed is None else tuple(sorted(allowed)),
        )
    return result


def element_line(element: Element) -> str:
    """``services4 203.0.113.10 . tcp . 80``."""
    name, value = element
    return f"{name} " + " . ".join(str(part) for part in value)


def elements_from_json(text: str, *, source: str) -> set[Element]:
    """The elements of ipvsctl's table in ``nft -j list table inet ipvsctl`` (or ``list ruleset``) output.

    Other tables, and sets that are not ipvsctl's, are ignored. InputError names ``source`` for text that
    is not such a listing.
    """
    try:
        entries = _entries(json.loads(text))
        elements: set[Element] = set()
        for entry in entries:
            found = entry.get("set") if isinstance(entry, Mapping) else None
            if not isinstance(found, Mapping) or found.get("table") != TABLE or found.get("name") not in _SETS:
                continue
            name = str(found["name"])
            elements.update((name, _value(item, name)) for item in found.get("elem", ()))
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise InputError(f"not an nft -j listing of table {TABLE}: {error}", source=source) from None
    return elements


def _entries(document: object) -> list[object]:
    entries = document["nftables"] if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        raise TypeError("no list under 'nftables'")
    return entries


def _value(item: object, name: str) -> Value:
    family = 6 if name.endswith("6") else 4
    if isinstance(item, Mapping) and "elem" in item:  # an element with statements (counters, timeouts)
        item = item["elem"]["val"]
    parts = item["concat"] if isinstance(item, Mapping) and "concat" in item else [item]
    if not isinstance(parts, list):
        raise TypeError(f"element {item!r}")
    values: list[str | int] = [_part(part, family=family, last=index == len(parts) - 1, kind=_SETS[name])
                               for index, part in enumerate(parts)]  # fmt: skip
    return tuple(values)


def _part(part: object, *, family: int, last: bool, kind: Kind) -> str | int:
    if isinstance(part, bool):
        raise TypeError(f"element part {part!r}")
    if isinstance(part, int):
        return part
    if isinstance(part, str):
        if kind.interval and last:
            return str(ipaddress.ip_network(f"{part}/{32 if family == 4 else 128}"))
        return part
    if isinstance(part, Mapping) and "prefix" in part:
        prefix = part["prefix"]
        return str(ipaddress.ip_network(f"{prefix['addr']}/{prefix['len']}", strict=False))
    if isinstance(part, Mapping) and "range" in part:
        first, end = part["range"]
        networks = list(ipaddress.summarize_address_range(ipaddress.ip_address(first), ipaddress.ip_address(end)))
        return str(networks[0]) if len(networks) == 1 else f"{first}-{end}"
    raise TypeError(f"element part {part!r}")


def changes_text(add: Collection[Element], delete: Collection[Element], *, table_present: bool) -> str:
    """The element changes of the table as ``diff`` prints them (empty when there are none)."""
    if not add and not delete:
        return ""
    header = f"nftables {FAMILY} {TABLE}" + ("" if table_present else " (absent: would be written whole)")
    lines = [header]
    lines += [f"  + element {element_line(element)}" for element in sorted(add, key=_sort_key)]
    lines += [f"  - element {element_line(element)}" for element in sorted(delete, key=_sort_key)]
    lines.append(f"nftables {FAMILY} {TABLE}: {len(add)} elements to add, {len(delete)} to delete")
    return "\n".join(lines) + "\n"


def _sort_key(element: Element) -> tuple[str, tuple[str, ...]]:
    return element[0], tuple(str(part) for part in element[1])
