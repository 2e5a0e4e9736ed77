"""TokenManager on real Redis: early refresh, refresh after 401, invalid_grant, and one refresh across processes."""

from __future__ import annotations

import base64
import json
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from redis import Redis

from crm_qb.qbo.oauth import InvalidGrantError, OAuthClient, TokenSet
from crm_qb.qbo.tokens import NeedsReconnectError, NotConnectedError, StoredTokens, TokenManager
from tests.conftest import REDIS_TEST_URL

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CONNECTION = "conn-1"


class MemoryStore:
    """A TokenStore in a dict, recording every save and mark."""

    def __init__(self, tokens: TokenSet | None = None) -> None:
        self.rows: dict[str, StoredTokens] = {}
        self.saves: list[TokenSet] = []
        self.marks: list[str] = []
        if tokens is not None:
            self.rows[CONNECTION] = StoredTokens(tokens)

    def load(self, connection_id: str) -> StoredTokens | None:
        return self.rows.get(connection_id)

    def save(self, connection_id: str, tokens: TokenSet) -> None:
        self.saves.append(tokens)
        self.rows[connection_id] = StoredTokens(tokens)

    def mark_needs_reconnect(self, connection_id: str, reason: str) -> None:
        self.marks.append(reason)
        self.rows[connection_id] = StoredTokens(self.rows[connection_id].tokens, True, reason)


class FakeRefresh:
    """oauth_refresh that rotates tokens, or fails with the given error."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[str] = []
        self.error = error

    def __call__(self, refresh_token: str) -> TokenSet:
        self.calls.append(refresh_token)
        if self.error is not None:
            raise self.error
        n = len(self.calls)
        return TokenSet(f"access-{n}", f"refresh-{n}", NOW + timedelta(hours=1), NOW + timedelta(days=100))


def tokens(access: str = "access-0", expires_in: timedelta = timedelta(hours=1),
           refresh_expires_in: timedelta = timedelta(days=100)) -> TokenSet:
    return TokenSet(access, "refresh-0", NOW + expires_in, NOW + refresh_expires_in, "9130")


def manager(redis: Redis, store: MemoryStore, refresh: Callable[[str], TokenSet]) -> TokenManager:
    return TokenManager(redis, store, refresh, clock=lambda: NOW, lock_wait=2)


def test_a_fresh_token_is_returned_without_refreshing(redis_client: Redis) -> None:
    store, refresh = MemoryStore(tokens()), FakeRefresh()

    assert manager(redis_client, store, refresh).access_token(CONNECTION) == "access-0"
    assert refresh.calls == []


def test_a_token_within_the_skew_is_refreshed_and_saved(redis_client: Redis) -> None:
    store, refresh = MemoryStore(tokens(expires_in=timedelta(minutes=4))), FakeRefresh()

    token = manager(redis_client, store, refresh).access_token(CONNECTION)

    assert token == "access-1"
    assert refresh.calls == ["refresh-0"]
    assert store.rows[CONNECTION].tokens.refresh_token == "refresh-1"
    assert store.rows[CONNECTION].tokens.realm_id == "9130"  # kept: the refresh answer has no realm


def test_the_new_access_token_is_not_handed_out_unless_saved(redis_client: Redis) -> None:
    store, refresh = MemoryStore(tokens(expires_in=timedelta(0))), FakeRefresh()

    def failing_save(connection_id: str, new: TokenSet) -> None:
        raise RuntimeError("database down")

    store.save = failing_save  # type: ignore[method-assign]

    with pytest.raises(RuntimeError, match="database down"):
        manager(redis_client, store, refresh).access_token(CONNECTION)


def test_force_refresh_replaces_the_stale_token(redis_client: Redis) -> None:
    store, refresh = MemoryStore(tokens()), FakeRefresh()

    assert manager(redis_client, store, refresh).force_refresh(CONNECTION, "access-0") == "access-1"
    assert refresh.calls == ["refresh-0"]


def test_force_refresh_after_someone_else_refreshed_does_not_call_intuit(redis_client: Redis) -> None:
    store, refresh = MemoryStore(tokens(access="access-from-another-process")), FakeRefresh()

    token = manager(redis_client, store, refresh).force_refresh(CONNECTION, "access-stale")

    assert token == "access-from-another-process"
    assert refresh.calls == []


def test_invalid_grant_marks_the_connection_and_raises(redis_client: Redis) -> None:
    store = MemoryStore(tokens(expires_in=timedelta(0)))
    refresh = FakeRefresh(InvalidGrantError("Intuit refused the token request: invalid_grant", error="invalid_grant"))

    with pytest.raises(NeedsReconnectError, match="invalid_grant"):
        manager(redis_client, store, refresh).access_token(CONNECTION)

    assert store.rows[CONNECTION].needs_reconnect
    assert "invalid_grant" in store.marks[0]


def test_a_connection_marked_for_reconnect_raises_without_calling_intuit(redis_client: Redis) -> None:
    store, refresh = MemoryStore(), FakeRefresh()
    store.rows[CONNECTION] = StoredTokens(tokens(expires_in=timedelta(0)), True, "user revoked access")

    with pytest.raises(NeedsReconnectError, match="user revoked access"):
        manager(redis_client, store, refresh).access_token(CONNECTION)
    with pytest.raises(NeedsReconnectError):
        manager(redis_client, store, refresh).force_refresh(CONNECTION, "access-0")

    assert refresh.calls == []


def test_an_expired_refresh_token_needs_reconnect_without_calling_intuit(redis_client: Redis) -> None:
    store = MemoryStore(tokens(expires_in=timedelta(0), refresh_expires_in=timedelta(seconds=-1)))
    refresh = FakeRefresh()

    with pytest.raises(NeedsReconnectError, match="expired"):
        manager(redis_client, store, refresh).access_token(CONNECTION)

    assert refresh.calls == []
    assert store.rows[CONNECTION].needs_reconnect


def test_a_connection_without_tokens_is_not_connected(redis_client: Redis) -> None:
    with pytest.raises(NotConnectedError):
        manager(redis_client, MemoryStore(), FakeRefresh()).access_token(CONNECTION)


def test_invalid_grant_after_a_concurrent_rotation_uses_the_rotated_tokens(redis_client: Redis) -> None:
    store = MemoryStore(tokens(expires_in=timedelta(0)))

    def raced(refresh_token: str) -> TokenSet:
        # Another writer saved new tokens while our call was in flight (e.g. after our lock expired).
        store.rows[CONNECTION] = StoredTokens(TokenSet("access-other", "refresh-other", NOW + timedelta(hours=1),
                                                       None, "9130"))
        raise InvalidGrantError("invalid_grant", error="invalid_grant")

    assert manager(redis_client, store, raced).access_token(CONNECTION) == "access-other"
    assert store.marks == []


# -- several processes, one real token endpoint on 127.0.0.1 ------------------------------------------------

CLIENT_ID, CLIENT_SECRET = "client-id", "client-secret"


class FakeIntuit(ThreadingHTTPServer):
    """Discovery plus a token endpoint that rotates refresh tokens and rejects superseded ones."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), TokenHandler)
        self.lock = threading.Lock()
        self.current_refresh = "refresh-0"
        self.calls = 0
        self.invalid_grants = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class TokenHandler(BaseHTTPRequestHandler):
    server: FakeIntuit

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def do_GET(self) -> None:
        base = self.server.base
        self.reply(200, {"authorization_endpoint": f"{base}/authorize", "token_endpoint": f"{base}/token",
                         "revocation_endpoint": f"{base}/revoke"})

    def do_POST(self) -> None:
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if self.headers.get("Authorization") != expected or form.get("grant_type") != ["refresh_token"]:
            self.reply(401, {"error": "invalid_client"})
            return
        time.sleep(0.2)  # a slow token call widens the window for a race
        with self.server.lock:
            self.server.calls += 1
            if form["refresh_token"] != [self.server.current_refresh]:
                self.server.invalid_grants += 1
                self.reply(400, {"error": "invalid_grant"})
                return
            n = self.server.calls
            self.server.current_refresh = f"refresh-{n}"
        self.reply(200, {"access_token": f"access-{n}", "refresh_token": f"refresh-{n}", "token_type": "bearer",
                         "expires_in": 3600, "x_refresh_token_expires_in": 8726400})

    def reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("intuit_tid", f"tid-{self.server.calls}")
        self.end_headers()
        self.wfile.write(data)


class SqliteStore:
    """A TokenStore over one SQLite file, shared by every process of the test."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def create(self) -> None:
        with self._connect() as db:
            db.execute("CREATE TABLE tokens (id TEXT PRIMARY KEY, access TEXT, refresh TEXT, access_exp TEXT,"
                       " refresh_exp TEXT, realm TEXT, needs_reconnect INTEGER DEFAULT 0, reason TEXT)")

    def load(self, connection_id: str) -> StoredTokens | None:
        with self._connect() as db:
            row = db.execute("SELECT access, refresh, access_exp, refresh_exp, realm, needs_reconnect, reason"
                             " FROM tokens WHERE id = ?", (connection_id,)).fetchone()
        if row is None:
            return None
        refresh_exp = datetime.fromisoformat(row[3]) if row[3] else None
        token_set = TokenSet(row[0], row[1], datetime.fromisoformat(row[2]), refresh_exp, row[4])
        return StoredTokens(token_set, bool(row[5]), row[6])

    def save(self, connection_id: str, tokens: TokenSet) -> None:
        refresh_exp = tokens.refresh_expires_at.isoformat() if tokens.refresh_expires_at else None
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?, ?, ?, 0, NULL)",
                       (connection_id, tokens.access_token, tokens.refresh_token,
                        tokens.access_expires_at.isoformat(), refresh_exp, tokens.realm_id))

    def mark_needs_reconnect(self, connection_id: str, reason: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE tokens SET needs_reconnect = 1, reason = ? WHERE id = ?", (reason, connection_id))


def refresh_in_a_process(db_path: str, discovery_url: str, barrier: Any, results: Any) -> None:
    """One worker process: wait for the others, get a token, then all force a refresh after a 401."""
    redis = Redis.from_url(REDIS_TEST_URL)
    oauth = OAuthClient(CLIENT_ID, CLIENT_SECRET, "http://127.0.0.1/cb", discovery_url)
    tokens = TokenManager(redis, SqliteStore(db_path), oauth.refresh)
    oauth.discovery  # noqa: B018 - fetch it before the race so only token calls race
    barrier.wait()
    first = tokens.access_token(CONNECTION)
    barrier.wait()
    second = tokens.force_refresh(CONNECTION, first)
    results.put((first, second))
    redis.close()


def test_processes_refreshing_one_connection_at_once_make_one_token_call(redis_client: Redis, tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "tokens.sqlite3"))
    store.create()
    now = datetime.now(UTC)
    store.save(CONNECTION, TokenSet("access-expired", "refresh-0", now - timedelta(minutes=1),
                                    now + timedelta(days=100), "9130"))
    server = FakeIntuit()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    context = multiprocessing.get_context("spawn")
    count = 4
    barrier, results = context.Barrier(count), context.Queue()
    processes = [context.Process(target=refresh_in_a_process,
                                 args=(store.path, f"{server.base}/.well-known/openid_configuration",
                                       barrier, results))
                 for _ in range(count)]
    try:
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=60) for _ in range(count)]
        for process in processes:
            process.join(30)
    finally:
        server.shutdown()
        server.server_close()

    assert [p.exitcode for p in processes] == [0] * count
    assert server.invalid_grants == 0
    assert server.calls == 2  # one refresh for the expiry, one for the 401: never one per process
    assert {first for first, _ in outcomes} == {"access-1"}
    assert {second for _, second in outcomes} == {"access-2"}
    final = store.load(CONNECTION)
    assert final is not None
    assert (final.tokens.access_token, final.tokens.refresh_token, final.tokens.realm_id) == (
        "access-2", "refresh-2", "9130")
    assert final.tokens.access_valid_at(datetime.now(UTC), timedelta(minutes=5))
