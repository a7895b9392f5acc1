"""Reading ipvsctl's table from `nft -j` and saying what it does to each VIP."""

from __future__ import annotations

import json

import pytest

from ipvsctl.errors import InputError
from ipvsctl.model import Protocol, ServiceKey
from ipvsctl.netfilter.listing import Treatment, element_line, elements_from_json, treatments

LISTING = json.dumps(
    {
        "nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "ipvsctl", "handle": 1}},
            {"set": {"family": "inet", "name": "vips4", "table": "ipvsctl", "type": "ipv4_addr",
                     "elem": ["203.0.113.20"]}},
            {"set": {"family": "inet", "name": "allowed4", "table": "ipvsctl", "flags": ["interval"],
                     "elem": [{"concat": ["203.0.113.20", "tcp", 443, "192.0.2.3"]},
                              {"concat": ["203.0.113.20", "tcp", 443, {"prefix": {"addr": "198.51.100.0", "len": 24}}]},
                              {"concat": ["203.0.113.20", "tcp", 443, {"range": ["192.0.2.10", "192.0.2.12"]}]}]}},
            {"set": {"family": "inet", "name": "hairpin6", "table": "ipvsctl",
                     "elem": [{"concat": ["2001:db8:5::10", "udp", 53, "2001:db8:5::10"]}]}},
            {"set": {"family": "inet", "name": "vips4", "table": "filter", "elem": ["192.0.2.99"]}},
        ]
    }
)  # fmt: skip


def test_a_listing_gives_ipvsctls_elements_only() -> None:
    """Plain, prefix and range forms are read; another table's set of the same name is not ipvsctl's."""
    assert elements_from_json(LISTING, source="nft.json") == {
        ("vips4", ("203.0.113.20",)),
        ("allowed4", ("203.0.113.20", "tcp", 443, "192.0.2.3/32")),
        ("allowed4", ("203.0.113.20", "tcp", 443, "198.51.100.0/24")),
        ("allowed4", ("203.0.113.20", "tcp", 443, "192.0.2.10-192.0.2.12")),
        ("hairpin6", ("2001:db8:5::10", "udp", 53, "2001:db8:5::10")),
    }


@pytest.mark.parametrize(
    "text",
    [
        '{"nftables": 3}',
        "[]",
        "not json",
        '{"nftables": [{"set": {"table": "ipvsctl", "name": "vips4", "elem": [true]}}]}',
    ],
)
def test_what_is_not_a_listing_is_an_input_error(text: str) -> None:
    """Anything else is one error naming the file."""
    with pytest.raises(InputError, match=r"^nft\.json: not an nft -j listing"):
        elements_from_json(text, source="nft.json")


def test_treatments_say_what_the_table_does_to_each_vip() -> None:
    """A filtered VIP with source ranges; a masqueraded NodePort; a ClusterIP masqueraded from outside."""
    result = treatments(
        [
            ("services4", ("203.0.113.20", "tcp", 443)),
            ("ranged4", ("203.0.113.20", "tcp", 443)),
            ("allowed4", ("203.0.113.20", "tcp", 443, "192.0.2.0/24")),
            ("masquerade4", ("192.0.2.11", "tcp", 30080)),
            ("cluster4", ("203.0.113.10", "tcp", 80)),
        ]
    )
    assert result[ServiceKey(Protocol.TCP, "203.0.113.20", 443)].describe() == "filter: open; sources 192.0.2.0/24"
    assert result[ServiceKey(Protocol.TCP, "192.0.2.11", 30080)] == Treatment(masquerade=True)
    assert result[ServiceKey(Protocol.TCP, "203.0.113.10", 80)].cluster_masquerade


def test_a_ranged_vip_without_an_allowed_source_fails_closed() -> None:
    """ranged without any allowed range: nothing gets through, and the description says so."""
    (treatment,) = treatments([("ranged4", ("203.0.113.20", "tcp", 443))]).values()
    assert treatment.describe() == "sources none (fails closed)"


def test_an_element_line_reads_as_nft_writes_it() -> None:
    """set name, then the value's parts joined by dots."""
    assert element_line(("services4", ("203.0.113.10", "tcp", 80))) == "services4 203.0.113.10 . tcp . 80"
