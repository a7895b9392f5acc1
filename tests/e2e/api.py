"""A small synchronous kube-apiserver client for the bed: JSON in and out over one kept-alive HTTPS connection.

The bed writes what a control plane's controllers would (Nodes, Services, their load-balancer status,
EndpointSlices, RBAC) from the guest, where importing kubernetes-asyncio would cost seconds of emulated
start-up. One connection is kept and reopened after a failure (a new connection through the lab's forward
costs about 110 ms; a request on an open one about 2 ms).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import ssl
import time
from pathlib import Path
from typing import Any

Json = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


class ApiError(AssertionError):
    """The apiserver answered with an unexpected status; the message carries its answer."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} answered {status}: {body[:500]}")
        self.status = status


class Api:
    """Requests as one user (a bearer token) to the apiserver at host:port, checked against `ca_file`."""

    def __init__(self, *, host: str, port: int, token: str, ca_file: Path, timeout: float = 10.0) -> None:
        self._host = host
        self._port = port
        self._token = token
        self._timeout = timeout
        self._context = ssl.create_default_context(cafile=str(ca_file))
        self._connection: http.client.HTTPSConnection | None = None

    def close(self) -> None:
        """Close the kept connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(self, method: str, path: str, body: Json | None = None, *, content_type: str = "") -> tuple[int, Json]:
        """Send one request (reconnecting once if the kept connection broke); the status and the JSON answer."""
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = content_type or "application/json"
        for attempt in range(2):
            if self._connection is None:
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._context
                )
            try:
                self._connection.request(method, path, body=payload, headers=headers)
                response = self._connection.getresponse()
                text = response.read().decode()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 1:
                    raise
                continue
            return response.status, (json.loads(text) if text.startswith("{") else {"text": text})
        raise AssertionError("unreachable")  # pragma: no cover

    def _expect(self, method: str, path: str, body: Json | None, ok: set[int], content_type: str = "") -> Json:
        status, answer = self.request(method, path, body, content_type=content_type)
        if status not in ok:
            raise ApiError(method, path, status, json.dumps(answer))
        return answer

    def get(self, path: str) -> Json:
        """GET an object or list."""
        return self._expect("GET", path, None, {200})

    def create(self, collection: str, body: Json) -> Json:
        """POST a new object to its collection."""
        return self._expect("POST", collection, body, {201})

    def put(self, path: str, body: Json) -> Json:
        """Replace an object (its resourceVersion is taken from the server: last writer wins)."""
        current = self.get(path)
        body = {**body, "metadata": {**body["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
        return self._expect("PUT", path, body, {200})

    def merge_patch(self, path: str, patch: Json) -> Json:
        """Apply a JSON merge patch (e.g. to a `status` subresource)."""
        return self._expect("PATCH", path, patch, {200}, content_type=MERGE_PATCH)

    def delete(self, path: str) -> None:
        """Delete an object; absent is fine."""
        self._expect("DELETE", path, None, {200, 202, 404})

    def create_or_replace(self, collection: str, body: Json) -> Json:
        """Create the object, or replace it when it exists."""
        status, answer = self.request("POST", collection, body)
        if status == 201:
            return answer
        if status != 409:
            raise ApiError("POST", collection, status, json.dumps(answer))
        return self.put(f"{collection}/{body['metadata']['name']}", body)

    def served_versions(self, group: str) -> list[str]:
        """The versions the server serves for an API group (discovery)."""
        return [version["version"] for version in self.get(f"/apis/{group}")["versions"]]

    def ready(self) -> bool:
        """Whether /readyz answers ok now."""
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, answer = self.request("GET", "/readyz")
            return status == 200 and answer.get("text", "").strip() == "ok"
        return False

    def wait_ready(self, *, timeout: float) -> float:
        """Wait until /readyz says ok; the seconds it took (AssertionError past `timeout`)."""
        start = time.monotonic()
        while not self.ready():
            if time.monotonic() - start > timeout:
                raise AssertionError(f"the apiserver was not ready within {timeout:.0f} s")
            time.sleep(0.2)
        return time.monotonic() - start


def collection(api_version: str, kind_plural: str, *, namespace: str | None = None) -> str:
    """The URL path of a collection: `/api/v1/namespaces/default/services`, `/apis/GROUP/VERSION/...`."""
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{kind_plural}" if namespace else f"{prefix}/{kind_plural}"
