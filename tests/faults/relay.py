"""A relay between the sandboxes' senders and crm-qb's ingress, for the faults a sender alone cannot make.

Both sandboxes post their deliveries here instead of to crm-qb: ``/qbo`` goes on to ``/webhooks/qbo``,
``/crm`` to ``/webhooks/crm/<connection>``. Modes:

- ``pass``: forward each delivery as it is and answer the sender with crm-qb's status (a transparent proxy).
- ``scramble``: duplicate and out-of-order deliveries. The relay answers the sender at once and holds the
  delivery; every ``SCRAMBLE_TICK`` seconds it forwards what it holds newest first, then each again oldest first
  (each delivery twice, in both orders). The original bytes and signature are kept (CRM signatures stay valid for
  5 minutes). A forward that fails is retried until ``GIVE_UP_SECONDS``; deliveries the relay gave up on are
  counted, and a run with any of them is not a valid measurement of crm-qb.
- ``poison``: forward as ``pass``, but add hostile events to the next delivery of each source (and to its
  retries, recognised by their first event id): for QBO, CloudEvents with an entity id, a realm id, an entity name
  and an operation name each 300 characters long; for the CRM, a ``contact.updated`` whose contact id is 300
  characters long. Added events are signed again, as their senders sign: Intuit's ``intuit-signature`` (base64
  HMAC-SHA256 of the body with the verifier token), the CRM's ``X-CRM-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
  "<t>.<body>">`` (DESIGN.md section 6).

Every answer crm-qb gives to a forward is counted by source and status.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from tests.support import free_port

SCRAMBLE_TICK = 0.5
GIVE_UP_SECONDS = 120.0
LONG = 300
FORWARDED_HEADERS = ("Content-Type", "intuit-signature", "X-CRM-Signature")


@dataclass
class Held:
    """A delivery the relay has acknowledged and must still forward."""

    source: str
    body: bytes
    headers: dict[str, str]
    received: float = field(default_factory=time.monotonic)


@dataclass
class Relay:
    """The relay server (see the module docstring); ``start`` binds it on 127.0.0.1."""

    web: str
    connection_id: int
    verifier_token: str
    hook_secret: str
    mode: str = "pass"
    statuses: Counter[str] = field(default_factory=Counter)
    gave_up: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    _held: list[Held] = field(default_factory=list)
    _poison_keys: dict[str, str | None] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    port: int = 0

    @property
    def url(self) -> str:
        """The relay's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Relay:
        """Serve on a free port and start the scramble thread; return self."""
        self.port = free_port()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server calls it by this name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k in FORWARDED_HEADERS if (v := self.headers.get(k))}
                status = relay.receive(self.path.strip("/"), body, headers)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # quiet: the relay counts statuses itself
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True, name="relay-http").start()
        threading.Thread(target=self._scrambler, daemon=True, name="relay-scramble").start()
        return self

    def stop(self) -> None:
        """Stop serving (held deliveries are forwarded first, within GIVE_UP_SECONDS)."""
        self.mode = "pass"
        for _ in range(int(GIVE_UP_SECONDS * 2)):
            with self._lock:
                if not self._held:
                    break
            time.sleep(0.5)
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def arm_poison(self) -> None:
        """Add hostile events to the next delivery of each source (and to that delivery's retries)."""
        with self._lock:
            self._poison_keys = {"qbo": None, "crm": None}
            self.mode = "poison"

    def held(self) -> int:
        """Deliveries acknowledged but not yet forwarded."""
        with self._lock:
            return len(self._held)

    # -- receiving ----------------------------------------------------------------------------------------------

    def receive(self, source: str, body: bytes, headers: dict[str, str]) -> int:
        """Handle one delivery from a sender; return the status to answer it with."""
        if source not in ("qbo", "crm"):
            return 404
        if self.mode == "scramble":
            with self._lock:
                self._held.append(Held(source, body, headers))
            return 200
        if self.mode == "poison":
            body, headers = self._maybe_poison(source, body, headers)
        return self._forward(source, body, headers)

    def _forward(self, source: str, body: bytes, headers: dict[str, str]) -> int:
        path = "/webhooks/qbo" if source == "qbo" else f"/webhooks/crm/{self.connection_id}"
        try:
            status = requests.post(self.web + path, data=body, headers=headers, timeout=10).status_code
        except requests.RequestException:
            status = 502
        with self._lock:
            self.statuses[f"{source} {status}"] += 1
        return status

    # -- scramble -----------------------------------------------------------------------------------------------

    def _scrambler(self) -> None:
        while not self._stop.wait(SCRAMBLE_TICK):
            with self._lock:
                batch, self._held = self._held, []
            if not batch:
                continue
            for held in reversed(batch):
                self._deliver(held)
            for held in batch:
                self._deliver(held)

    def _deliver(self, held: Held) -> None:
        while time.monotonic() - held.received < GIVE_UP_SECONDS and not self._stop.is_set():
            if 200 <= self._forward(held.source, held.body, held.headers) < 300:
                return
            time.sleep(1.0)
        with self._lock:
            self.gave_up += 1

    # -- poison -------------------------------------------------------------------------------------------------

    def _maybe_poison(self, source: str, body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        try:
            parsed = json.loads(body)
        except ValueError:
            return body, headers
        first = _first_event_id(source, parsed)
        with self._lock:
            if source not in self._poison_keys:
                return body, headers
            key = self._poison_keys[source]
            if key is None:
                self._poison_keys[source] = key = first
            if key != first:
                return body, headers
            self.injected[source] += 1
        if source == "qbo":
            poisoned = json.dumps(parsed + _qbo_poison(parsed)).encode()
            return poisoned, {**headers, "intuit-signature": _sign_qbo(poisoned, self.verifier_token)}
        parsed["events"].append(_crm_poison())
        poisoned = json.dumps(parsed).encode()
        return poisoned, {**headers, "X-CRM-Signature": _sign_crm(poisoned, self.hook_secret)}


def _first_event_id(source: str, parsed: Any) -> str | None:
    events = parsed if source == "qbo" else (parsed or {}).get("events")
    if isinstance(events, list) and events and isinstance(events[0], dict):
        return str(events[0].get("id"))
    return None


def _qbo_poison(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """CloudEvents with an over-long entity id, realm id, entity name and operation (ids fixed per delivery)."""
    sample = events[0]
    realm, entity_id = str(sample.get("intuitaccountid")), str(sample.get("intuitentityid"))
    seed = str(sample.get("id"))

    def event(n: int, type_: str, realm_id: str, entity: str) -> dict[str, Any]:
        return {**sample, "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/{n}")), "type": type_,
                "intuitaccountid": realm_id, "intuitentityid": entity}

    return [event(1, "qbo.customer.updated.v1", realm, "9" * LONG),
            event(2, "qbo.customer.updated.v1", "7" * LONG, entity_id),
            event(3, f"qbo.{'x' * LONG}.updated.v1", realm, entity_id),
            event(4, f"qbo.customer.{'y' * LONG}.v1", realm, entity_id)]


def _crm_poison() -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    contact = {"id": "c" * LONG, "version": 1, "updated_at": now, "first_name": "Poison", "last_name": "Id",
               "email": f"poison.{uuid.uuid4().hex[:6]}@faults.example"}
    return {"id": str(uuid.uuid4()), "type": "contact.updated", "occurred_at": now, "contact": contact}


def _sign_qbo(body: bytes, verifier_token: str) -> str:
    return base64.b64encode(hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()).decode()


def _sign_crm(body: bytes, secret: str) -> str:
    stamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"
