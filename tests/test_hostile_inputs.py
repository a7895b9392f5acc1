"""Arbitrary text and bytes into the save-file, connection-table and manifest readers: only our errors come out.

Each reader is fed random text, hostile fragments on their own (Unicode digits, 5000-digit numbers,
deep nesting, YAML tags and aliases, controls, bytes that are not UTF-8), and valid input spliced with
them. Whatever comes in, the result is a value or an ``IpvsctlError`` that names the source: never a
traceback.
"""

from __future__ import annotations

import contextlib
import io
import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvsctl.conntable import parse_connections
from ipvsctl.errors import IpvsctlError, LineFormatError
from ipvsctl.ipvsadm import parse_save
from ipvsctl.kube.manifests import load_manifests
from tests.strategies import hostile_bytes, hostile_text

SAVE = """\
-A -t 203.0.113.10:80 -s rr -p 600 -M 255.255.255.0
-a -t 203.0.113.10:80 -r 198.51.100.10:8080 -m -w 1
-A -f 7 -6 -s wlc
-a -f 7 -6 -r [2001:db8::10]:0 -g -w 65535
"""
CONN = """\
Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP C0000202 0000 CB00710A 0050 C6336402 1F90 ASSURED         295
TCP C0000202 C822 CB00710A 0050 C6336402 1F90 TIME_WAIT       115 sip abc
"""
MANIFEST = """\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: default, annotations: {ipvsctl.io/persistence-netmask: "24"}}
  spec:
    clusterIP: 203.0.113.10
    ports: [{port: 80, nodePort: 30080}]
    sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
  addressType: IPv4
  ports: [{port: 8080}]
  endpoints: [{addresses: [198.51.100.10], nodeName: worker1}]
- apiVersion: v1
  kind: Node
  metadata: {name: worker1}
  status: {addresses: [{type: InternalIP, address: 192.0.2.11}]}
"""
MANIFEST_JSON = (
    '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},'
    ' "spec": {"clusterIP": "203.0.113.10", "ports": [{"port": 80}]}}'
)

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.one_of(hostile_text(SAVE), hostile_bytes(SAVE)))
def test_any_save_gives_a_table_or_a_line_error(data: str | bytes) -> None:
    """parse_save: a Table, or a LineFormatError (which names the source and the line)."""
    with contextlib.suppress(LineFormatError):
        parse_save(data, source="node.save")


@PROPERTY
@given(st.one_of(hostile_text(CONN), hostile_bytes(CONN)))
def test_any_connection_table_gives_entries_or_a_line_error(data: str | bytes) -> None:
    """parse_connections: entries, or a LineFormatError (which names the source and the line)."""
    with contextlib.suppress(LineFormatError):
        parse_connections(data, source="/proc/net/ip_vs_conn")


_files = itertools.count()


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the manifest files the properties write (one file per example)."""
    return tmp_path_factory.mktemp("hostile")


@PROPERTY
@given(
    data=st.one_of(hostile_bytes(MANIFEST), hostile_bytes(MANIFEST_JSON)), suffix=st.sampled_from([".yaml", ".json"])
)
def test_any_manifest_file_gives_objects_or_our_error(directory: Path, data: bytes, suffix: str) -> None:
    """load_manifests on a file: loaded objects and per-object errors, or an IpvsctlError; nothing else."""
    path = directory / f"{next(_files)}{suffix}"
    path.write_bytes(data)
    with contextlib.suppress(IpvsctlError):
        load_manifests([path])


@PROPERTY
@given(hostile_text(MANIFEST))
def test_any_manifest_on_stdin_gives_objects_or_our_error(text: str) -> None:
    """load_manifests on stdin (text that may hold surrogates, as the C locale decodes it): the same."""
    with contextlib.suppress(IpvsctlError):
        load_manifests(["-"], stdin=io.StringIO(text))
