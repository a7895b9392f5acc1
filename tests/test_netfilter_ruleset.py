"""The nft text of ipvsctl's table: one transaction replaces the whole table, elements grouped per set."""

from __future__ import annotations

from ipvsctl.netfilter.ruleset import create_dormant, replace_table, table_definition


def test_replacing_creates_then_deletes_before_defining() -> None:
    """The transaction works whether or not the table exists: add (a no-op if present), delete, define."""
    lines = replace_table([]).splitlines()
    assert lines[:3] == ["table inet ipvsctl", "delete table inet ipvsctl", "table inet ipvsctl {"]


def test_elements_are_added_per_set_in_a_stable_order() -> None:
    """Elements of one set go in one command, sorted, so the same state gives the same text."""
    text = replace_table([("vips4", ("203.0.113.2",)), ("vips4", ("203.0.113.1",)), ("vips6", ("2001:db8::1",))])
    assert text.splitlines()[-2:] == [
        "add element inet ipvsctl vips4 { 203.0.113.1, 203.0.113.2 }",
        "add element inet ipvsctl vips6 { 2001:db8::1 }",
    ]


def test_many_elements_are_split_into_bounded_commands() -> None:
    """5,000 elements make three commands, none longer than 2,000 elements."""
    text = replace_table([("vips4", (f"10.0.{n // 256}.{n % 256}",)) for n in range(5000)])
    commands = [line for line in text.splitlines() if line.startswith("add element")]
    assert [command.count(",") + 1 for command in commands] == [2000, 2000, 1000]


def test_the_masquerade_bit_is_set_and_cleared_in_the_mark() -> None:
    """Bit 14 (kube-proxy's default) is 0x4000: set before IPVS, cleared where it masquerades."""
    text = table_definition(masquerade_bit=14)
    assert "meta mark set meta mark | 0x00004000" in text
    assert "meta mark & 0x00004000 == 0x00004000 meta mark set meta mark & 0xffffbfff masquerade" in text


def test_cluster_cidrs_are_written_into_the_rules_of_their_family() -> None:
    """The pod network is part of the definition: an IPv4 CIDR gives the IPv4 rule only."""
    text = table_definition(cluster_cidrs=["10.0.0.0/8", "10.1.0.0/16"])
    assert "ip daddr . meta l4proto . th dport @cluster4 ip saddr != { 10.0.0.0/8, 10.1.0.0/16 }" in text
    assert "@cluster6" not in text


def test_a_dormant_creation_deletes_first_then_defines_the_table_off_its_hooks() -> None:
    """The dormant text works whether or not the table exists, and its table block says ``flags dormant``."""
    lines = create_dormant().splitlines()
    assert lines[:3] == ["table inet ipvsctl", "delete table inet ipvsctl", "table inet ipvsctl {"]
    assert "\tflags dormant;" in lines


def test_the_dormant_definition_differs_from_the_active_one_only_by_its_flags() -> None:
    """Sets, chains and rules are the same as the active table's: only the dormant flag line is added."""
    dormant = table_definition(cluster_cidrs=["192.0.2.0/24"], dormant=True).splitlines()
    active = table_definition(cluster_cidrs=["192.0.2.0/24"]).splitlines()
    assert [line for line in dormant if line != "\tflags dormant;"] == active
    assert len(dormant) == len(active) + 1
