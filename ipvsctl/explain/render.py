"""An ``Explanation`` as people read it (text) and as programs read it (JSON ``ipvsctl.explain/v1``) (pure).

JSON schema ``ipvsctl.explain/v1`` (documented in docs/output.md; keys are only ever added)::

    {"schema": "ipvsctl.explain/v1", "client": str, "node": str, "found": bool,
     "to": {"protocol", "address", "port"},
     "virtualService": VS + {"portZero": bool, "owner": "service"|"stale"|"foreign"} | null,
     "service": {"namespace", "name", "port": {"name", "protocol", "port", "nodePort"} | null,
                 "vipSource": str, "vipKind": "cluster-ip"|"node-port"|"external-ip"|"load-balancer",
                 "trafficPolicy": "Cluster"|"Local"} | null,
     "realServers": [RS + {"state": "serving"|"draining"|"missing"|"unwanted", "pod": ref | null,
                     "node": str | null, "activeConnections": int | null, "inactiveConnections": int | null}],
     "leftOut": [{"address", "port", "pod": ref | null, "node": str | null,
                  "reason": "other-family"|"refused-address"|"other-node"|"topology"|"terminating"|"not-ready",
                  "detail": str}],
     "notices": [Problem],
     "decision": {"by": "template"|"scheduler"|"unknown"|"nobody", "scheduler": str, "flags": [str],
                  "persistence": {"timeout", "netmask"} | null, "clientNetwork": str | null,
                  "pin": {"clientNetwork", "realServer": {"address", "port"}, "pod": ref | null,
                          "expiresSeconds", "timeoutSeconds", "weight": int | null} | null,
                  "candidates": [{"address", "port"}]} | null,
     "connections": [{"clientPort", "realServer": {"address", "port"}, "state", "expiresSeconds"}] | null,
     "netfilter": {"source": "kernel"|"file"|"desired", "tablePresent": bool | null, "vipFilter": bool,
                   "portOpen": bool, "sourceRanges": [str] | null, "sourceAllowed": bool | null,
                   "masquerade": bool | null, "masqueradeReason": str, "hairpin": bool} | null,
     "candidates": [{"service": ref, "skipped": str, "desired": bool, "rejections": [Problem],
                     "notices": [Problem]}]}

``connections`` null: the connection table was not read; ``activeConnections`` null: the counts were not read
(a saved table); ``netfilter`` null: not read (``--no-netfilter``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ipvsctl.explain.core import (
    Candidate,
    DecidedBy,
    Decision,
    EntryOwner,
    Explanation,
    RealServerState,
    RealServerView,
    ServicePort,
)
from ipvsctl.explain.leftout import LeftOut
from ipvsctl.explain.verdict import Verdict
from ipvsctl.model import RealServerKey, ServiceKey, join_host_port
from ipvsctl.printable import printable
from ipvsctl.report import Problem, describe_settings, real_json, ref_json, vs_json
from ipvsctl.translate import ServiceMessage

__all__ = ["SCHEMA", "explanation_json", "explanation_text"]

SCHEMA = "ipvsctl.explain/v1"
JSON = dict[str, object]


def _problem(message: ServiceMessage) -> Problem:
    return Problem(f"Service {message.service}", message.field, message.message)


# --- JSON -----------------------------------------------------------------------------------------


def explanation_json(explanation: Explanation) -> JSON:
    """The explanation as a JSON-ready document (schema in the module docstring)."""
    live = explanation.virtual_service
    target = explanation.target
    return {
        "schema": SCHEMA,
        "client": explanation.client,
        "node": explanation.node,
        "found": explanation.found,
        "to": _key_json(target),
        "virtualService": None
        if live is None
        else {
            **vs_json(live),
            "portZero": explanation.port_zero,
            "owner": explanation.owner.value if explanation.owner else None,
        },
        "service": _service_json(explanation.service),
        "realServers": [_real_json(view) for view in explanation.real_servers],
        "leftOut": [_left_json(left) for left in explanation.left_out],
        "notices": [_problem(notice).to_json() for notice in explanation.notices],
        "decision": _decision_json(explanation.decision),
        "connections": None
        if explanation.connections is None
        else [
            {
                "clientPort": each.client_port,
                "realServer": _real_key_json(each.real_server),
                "state": each.state,
                "expiresSeconds": each.expires,
            }
            for each in explanation.connections
        ],
        "netfilter": _verdict_json(explanation.netfilter),
        "candidates": [_candidate_json(candidate) for candidate in explanation.candidates],
    }


def _key_json(key: ServiceKey) -> JSON:
    return {"protocol": key.protocol.value, "address": key.address, "port": key.port}


def _real_key_json(key: RealServerKey) -> JSON:
    return {"address": key.address, "port": key.port}


def _service_json(service: ServicePort | None) -> JSON | None:
    if service is None:
        return None
    port = service.port
    return {
        **(ref_json(service.service) or {}),
        "port": None
        if port is None
        else {"name": port.name, "protocol": port.protocol.value, "port": port.port, "nodePort": port.node_port},
        "vipSource": service.source,
        "vipKind": service.kind.value,
        "trafficPolicy": "Local" if service.local else "Cluster",
    }


def _real_json(view: RealServerView) -> JSON:
    counts = view.counts
    return {
        **real_json(view.real),
        "state": view.state.value,
        "pod": ref_json(view.pod),
        "node": view.node or None,
        "activeConnections": None if counts is None else counts.active,
        "inactiveConnections": None if counts is None else counts.inactive,
    }


def _left_json(left: LeftOut) -> JSON:
    return {
        "address": left.address,
        "port": left.port,
        "pod": ref_json(left.pod),
        "node": left.node or None,
        "reason": left.reason.value,
        "detail": left.detail,
    }


def _decision_json(decision: Decision | None) -> JSON | None:
    if decision is None:
        return None
    persistence, pin = decision.persistence, decision.pin
    return {
        "by": decision.by.value,
        "scheduler": decision.scheduler,
        "flags": sorted(decision.sched_flags),
        "persistence": None
        if persistence is None
        else {"timeout": persistence.timeout, "netmask": persistence.netmask},
        "clientNetwork": decision.client_network,
        "pin": None
        if pin is None
        else {
            "clientNetwork": pin.client_network,
            "realServer": _real_key_json(pin.real_server),
            "pod": ref_json(pin.pod),
            "expiresSeconds": pin.expires,
            "timeoutSeconds": pin.timeout,
            "weight": decision.pinned_weight,
        },
        "candidates": [_real_key_json(key) for key in decision.candidates],
    }


def _verdict_json(verdict: Verdict | None) -> JSON | None:
    if verdict is None:
        return None
    return {
        "source": verdict.source,
        "tablePresent": verdict.present,
        "vipFilter": verdict.filtered,
        "portOpen": verdict.port_open,
        "sourceRanges": None if verdict.source_ranges is None else list(verdict.source_ranges),
        "sourceAllowed": verdict.source_allowed,
        "masquerade": verdict.masquerade,
        "masqueradeReason": verdict.masquerade_reason,
        "hairpin": verdict.hairpin,
    }


def _candidate_json(candidate: Candidate) -> JSON:
    return {
        "service": ref_json(candidate.service),
        "skipped": candidate.skipped,
        "desired": candidate.desired,
        "rejections": [_problem(rejection).to_json() for rejection in candidate.rejections],
        "notices": [_problem(notice).to_json() for notice in candidate.notices],
    }


# --- text -----------------------------------------------------------------------------------------

_OWNERS = {
    EntryOwner.SERVICE: "",
    EntryOwner.STALE: "  [ipvsctl's, but no Service wants it: the agent deletes it]",
    EntryOwner.FOREIGN: "  [foreign: not ipvsctl's, never touched by it]",
}
_STATES = {
    RealServerState.SERVING: "",
    RealServerState.DRAINING: "  DRAINING",
    RealServerState.MISSING: "  MISSING (desired, not programmed yet)",
    RealServerState.UNWANTED: "  UNWANTED (no longer an endpoint: the agent drains or deletes it)",
}


def explanation_text(explanation: Explanation) -> str:
    """Sections for people: the match, its Service, real servers, left-out endpoints, the decision, nftables."""
    lines = [f"client {explanation.client} -> {explanation.target} on node {explanation.node}"]
    live = explanation.virtual_service
    if live is None:
        lines += _no_match(explanation)
    else:
        via = "  (the VIP's port-zero catch-all)" if explanation.port_zero else ""
        owner = _OWNERS[explanation.owner] if explanation.owner else ""
        lines.append(f"virtual service {live.key}  {describe_settings(live)}{via}{owner}")
        lines += _service_lines(explanation.service)
        lines += _candidate_lines(explanation.candidates)
        lines += _real_lines(explanation.real_servers)
        lines += _left_lines(explanation.left_out)
        lines += [f"  notice: {_problem(notice)}" for notice in explanation.notices]
        if explanation.decision is not None:
            lines += _decision_lines(explanation.decision)
        lines += _connection_lines(explanation)
    if explanation.netfilter is not None:
        verdict_lines = _verdict_lines(explanation.netfilter)
        lines += verdict_lines if live is not None else verdict_lines[:2]  # no match: only the VIP filter's part
    return "\n".join(printable(line) for line in lines) + "\n"


def _no_match(explanation: Explanation) -> list[str]:
    lines = ["no virtual service matches: this node does not proxy it"]
    if explanation.desired is not None:
        lines.append(f"  the agent wants {explanation.desired.key} ({describe_settings(explanation.desired)}): "
                     "not programmed yet, or refused (a foreign entry at the address)")  # fmt: skip
    if not explanation.candidates:
        lines.append("  no Service asks for this address and port")
    return lines + _candidate_lines(explanation.candidates)


def _candidate_lines(candidates: Sequence[Candidate]) -> list[str]:
    lines = []
    for candidate in candidates:
        said = f": skipped, {candidate.skipped}" if candidate.skipped else ""
        said += ": in the agent's desired table" if candidate.desired else ""
        lines.append(f"  Service {candidate.service} asks for it{said}")
        lines += [f"    error: {_problem(rejection)}" for rejection in candidate.rejections]
        lines += [f"    notice: {_problem(notice)}" for notice in candidate.notices]
    return lines


def _service_lines(service: ServicePort | None) -> list[str]:
    if service is None:
        return ["  no Service owns it"]
    port = service.port
    named = f"port {port.name or '(unnamed)'} {port.protocol.value}/{port.port}" if port else "port ?"
    if port is not None and port.node_port:
        named += f" nodePort {port.node_port}"
    policy = "Local" if service.local else "Cluster"
    return [
        f"  Service {service.service} {named}  (from {service.source}, {service.kind.value}, traffic policy {policy})"
    ]


def _real_lines(views: Sequence[RealServerView]) -> list[str]:
    if not views:
        return ["  real servers: none (traffic is dropped)"]
    lines = [f"  real servers ({len(views)}):"]
    for view in views:
        real = view.real
        text = f"    {real} {real.forwarding.value} weight {real.weight}"
        if view.counts is not None:
            text += f"  active {view.counts.active} inactive {view.counts.inactive}"
        text += _STATES[view.state]
        text += f"  [pod {view.pod}]" if view.pod else ""
        text += f"  node {view.node}" if view.node else ""
        lines.append(text)
    return lines


def _left_lines(left_out: Sequence[LeftOut]) -> list[str]:
    if not left_out:
        return []
    lines = [f"  endpoints left out ({len(left_out)}):"]
    for left in left_out:
        pod = f"  [pod {left.pod}]" if left.pod else ""
        node = f"  node {left.node}" if left.node else ""
        lines.append(f"    {join_host_port(left.address, left.port)}{pod}{node}: {left.reason.value}: {left.detail}")
    return lines


def _decision_lines(decision: Decision) -> list[str]:
    scheduler = decision.scheduler + (f" ({', '.join(sorted(decision.sched_flags))})" if decision.sched_flags else "")
    pin = decision.pin
    if decision.by is DecidedBy.TEMPLATE and pin is not None:
        pod = f" [pod {pin.pod}]" if pin.pod else ""
        line = (f"  decision: pinned to {pin.real_server}{pod} by the template of {pin.client_network}, "
                f"{pin.expires}s of {pin.timeout}s left (each new connection restarts it)")  # fmt: skip
        lines = [line]
        if decision.pinned_weight == 0:
            lines.append("    its real server is draining: with expire_quiescent_template (the agent sets it) the "
                         f"template ends at the next connection, and {scheduler} picks again")  # fmt: skip
        elif decision.pinned_weight is None:
            lines.append("    its real server is no longer in the table: the next connection is scheduled anew")
        return lines
    if decision.by is DecidedBy.NOBODY:
        return ["  decision: no real server has a weight: a new connection is not scheduled (dropped)"]
    if decision.by is DecidedBy.UNKNOWN:
        return [f"  decision: persistent per {decision.client_network}; the connection table was not read, so "
                "whether a template pins the client is unknown (--conn-file)"]  # fmt: skip
    if decision.persistence is not None:
        return [f"  decision: not pinned: {scheduler} picks among {len(decision.candidates)} real servers, and the "
                f"choice pins {decision.client_network} for {decision.persistence.timeout}s"]  # fmt: skip
    return [f"  decision: {scheduler} picks among {len(decision.candidates)} real servers for each new connection"]


def _connection_lines(explanation: Explanation) -> list[str]:
    connections = explanation.connections
    if connections is None:
        return []
    if not connections:
        return ["  client's connections: none now"]
    lines = [f"  client's connections ({len(connections)}):"]
    lines += [
        f"    port {each.client_port} -> {each.real_server}  {each.state}  {each.expires}s left" for each in connections
    ]
    return lines


def _verdict_lines(verdict: Verdict) -> list[str]:
    presence = "" if verdict.present is None else ", table present" if verdict.present else ", TABLE ABSENT"
    lines = [f"nftables ({verdict.source}{presence}):"]
    if verdict.filtered:
        state = "lets this port through" if verdict.port_open else "REJECTS this port (no virtual service there)"
        lines.append(f"  VIP filter: {state}")
    else:
        lines.append("  VIP filter: not on this address (a node address, or not the agent's)")
    if verdict.source_ranges is not None:
        ranges = ", ".join(verdict.source_ranges) or "none (an invalid range fails closed)"
        allowed = "allowed" if verdict.source_allowed else "DROPPED: the client is outside them"
        lines.append(f"  source ranges {ranges}: {allowed}")
    masquerade = {True: "yes", False: "no", None: "depends"}[verdict.masquerade]
    lines.append(f"  masquerade: {masquerade}: {verdict.masquerade_reason}")
    return lines
