"""``ipvsctl explain``'s core: one client and one VIP:port joined with the node's tables and the cluster (pure).

``core`` builds the ``Explanation``, ``leftout`` says why endpoints are not real servers, ``render`` prints it.
"""

from ipvsctl.explain.core import (
    ClusterInput,
    DecidedBy,
    EntryOwner,
    Explanation,
    KernelInput,
    RealServerState,
    explain,
)
from ipvsctl.explain.leftout import LeftOutReason
from ipvsctl.explain.render import SCHEMA, explanation_json, explanation_text
from ipvsctl.explain.verdict import NetfilterInput

__all__ = [
    "SCHEMA",
    "ClusterInput",
    "DecidedBy",
    "EntryOwner",
    "Explanation",
    "KernelInput",
    "LeftOutReason",
    "NetfilterInput",
    "RealServerState",
    "explain",
    "explanation_json",
    "explanation_text",
]
