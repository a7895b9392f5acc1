"""The ``ipvsctl.io/*`` Service annotations: their names, syntax and validation (pure).

- ``ipvsctl.io/scheduler``: an IPVS scheduler name the kernel ships (``rr``, ``wlc``, ``mh``, ...).
- ``ipvsctl.io/persistence-netmask``: client grouping for ``sessionAffinity: ClientIP``.
  ``24`` or ``/24`` (a prefix length) or ``255.255.255.0`` (an IPv4 mask) for a single-stack
  Service; ``ipv4=24,ipv6=64`` (each part optional) names the family explicitly, as a
  dual-stack Service must.
- ``ipvsctl.io/affinity-scope``: ``node`` (persistence alone: each node picks a client's pod by itself) or
  ``cluster`` (every node picks the same pod for a client: Maglev hashing, see ``ipvsctl.affinity_scope``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping

from ipvsctl.errors import IpvsctlError
from ipvsctl.model import max_prefix
from ipvsctl.numbers import parse_decimal

__all__ = [
    "AFFINITY_SCOPES",
    "AFFINITY_SCOPE_ANNOTATION",
    "KNOWN_ANNOTATIONS",
    "NETMASK_ANNOTATION",
    "PREFIX",
    "SCHEDULER_ANNOTATION",
    "AnnotationError",
    "parse_affinity_scope",
    "parse_netmasks",
    "parse_scheduler",
    "unknown_annotations",
]

PREFIX = "ipvsctl.io/"
SCHEDULER_ANNOTATION = PREFIX + "scheduler"
NETMASK_ANNOTATION = PREFIX + "persistence-netmask"
AFFINITY_SCOPE_ANNOTATION = PREFIX + "affinity-scope"
KNOWN_ANNOTATIONS = frozenset({SCHEDULER_ANNOTATION, NETMASK_ANNOTATION, AFFINITY_SCOPE_ANNOTATION})
AFFINITY_SCOPES = ("node", "cluster")

_FAMILY_NAMES = {"ipv4": 4, "ipv6": 6}


class AnnotationError(IpvsctlError):
    """An annotation's value is invalid; ``annotation`` is its key."""

    def __init__(self, annotation: str, message: str) -> None:
        self.annotation = annotation
        self.message = message
        super().__init__(f"{self.field}: {message}")

    @property
    def field(self) -> str:
        """The annotation as a field path."""
        return f"metadata.annotations[{self.annotation}]"


def parse_scheduler(annotations: Mapping[str, str], *, default: str, known: Collection[str]) -> str:
    """The scheduler a Service asks for, or ``default``; AnnotationError if the kernel has no such one."""
    value = annotations.get(SCHEDULER_ANNOTATION)
    if value is None:
        return default
    name = value.strip()
    if name not in known:
        choices = " ".join(sorted(known))
        raise AnnotationError(SCHEDULER_ANNOTATION, f"unknown scheduler {value!r} (known: {choices})")
    return name


def parse_affinity_scope(annotations: Mapping[str, str], *, default: str) -> tuple[str, bool]:
    """The affinity scope a Service asks for (``node`` or ``cluster``) and whether it asked (else ``default``)."""
    value = annotations.get(AFFINITY_SCOPE_ANNOTATION)
    if value is None:
        return default, False
    scope = value.strip().lower()
    if scope not in AFFINITY_SCOPES:
        raise AnnotationError(AFFINITY_SCOPE_ANNOTATION, f"{value!r} is not node or cluster")
    return scope, True


def parse_netmasks(
    annotations: Mapping[str, str], *, families: Collection[int], defaults: Mapping[int, int]
) -> dict[int, int]:
    """Persistence prefix length per family of the Service: the annotation where given, else ``defaults``."""
    result = {family: defaults[family] for family in families}
    value = annotations.get(NETMASK_ANNOTATION)
    if value is None:
        return result
    parts = [part.strip() for part in value.split(",")]
    if not value.strip() or any(not part for part in parts):
        raise AnnotationError(NETMASK_ANNOTATION, f"empty entry in {value!r}")
    seen: set[int] = set()
    for part in parts:
        family, prefix = _parse_netmask_part(part, families=families)
        if family in seen:
            raise AnnotationError(NETMASK_ANNOTATION, f"IPv{family} given twice in {value!r}")
        seen.add(family)
        if family not in result:
            raise AnnotationError(
                NETMASK_ANNOTATION, f"IPv{family} netmask given, but the Service has no IPv{family} address"
            )
        result[family] = prefix
    return result


def _parse_netmask_part(part: str, *, families: Collection[int]) -> tuple[int, int]:
    name, sep, rest = part.partition("=")
    if sep:
        family = _FAMILY_NAMES.get(name.strip().lower())
        if family is None:
            raise AnnotationError(NETMASK_ANNOTATION, f"unknown family {name.strip()!r} (use ipv4= or ipv6=)")
        return family, _parse_mask(rest.strip(), family=family)
    if "." in part:
        return 4, _parse_mask(part, family=4)
    if len(families) != 1:
        raise AnnotationError(
            NETMASK_ANNOTATION,
            f"{part!r} is ambiguous for a dual-stack Service: write ipv4=N,ipv6=M",
        )
    (family,) = families
    return family, _parse_mask(part, family=family)


def _parse_mask(text: str, *, family: int) -> int:
    if family == 4 and "." in text:
        try:
            network = ipaddress.IPv4Network(f"0.0.0.0/{text}")
        except ValueError:
            network = None
        # ipaddress also takes host masks (0.0.0.255); only a real netmask written out counts.
        if network is None or str(network.netmask) != text:
            raise AnnotationError(NETMASK_ANNOTATION, f"{text!r} is not a contiguous IPv4 netmask")
        prefix = network.prefixlen
    else:
        parsed = parse_decimal(text.removeprefix("/"), max_digits=3)
        if parsed is None:
            raise AnnotationError(NETMASK_ANNOTATION, f"{text!r} is not a prefix length or IPv4 netmask")
        prefix = parsed
    limit = max_prefix(family)
    if not 1 <= prefix <= limit:
        raise AnnotationError(NETMASK_ANNOTATION, f"IPv{family} prefix length {prefix} is outside 1..{limit}")
    return prefix


def unknown_annotations(annotations: Mapping[str, str]) -> list[str]:
    """Keys under ``ipvsctl.io/`` that the agent does not know (typos worth a warning)."""
    if not annotations:  # most Services have none, and this runs for every Service translated
        return []
    return sorted(key for key in annotations if key.startswith(PREFIX) and key not in KNOWN_ANNOTATIONS)
