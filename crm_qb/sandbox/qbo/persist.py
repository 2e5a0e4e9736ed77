"""Optional SQLite persistence: every stored object is written through as (realm, entity, id, json).

Changes are buffered by ``record`` (called under a realm's lock) and written by ``flush`` in one transaction,
which the engine calls after each operation; ``load`` replays a file into a fresh store at start-up.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

from . import jsonio
from .store import RealmSettings

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS realms (realm_id TEXT PRIMARY KEY, settings TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS objects (realm_id TEXT NOT NULL, entity TEXT NOT NULL, id TEXT NOT NULL, "
    "body TEXT NOT NULL, PRIMARY KEY (realm_id, entity, id))",
)


class SqlitePersister:
    """Writes realms and objects to one SQLite file; thread-safe."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str, str], dict] = {}
        self._loading = False
        with self._lock, self._conn:
            for statement in _SCHEMA:
                self._conn.execute(statement)

    def record(self, realm_id: str, entity: str, obj_id: str, obj: dict) -> None:
        """Buffer one changed object (the store's change listener); ignored while loading."""
        if self._loading:
            return
        with self._lock:
            self._pending[(realm_id, entity, obj_id)] = obj

    def save_realm(self, settings: RealmSettings) -> None:
        """Write a realm's settings."""
        body = jsonio.dumps(vars(settings))
        with self._lock, self._conn:
            self._conn.execute("INSERT OR REPLACE INTO realms VALUES (?, ?)", (settings.realm_id, body))

    def flush(self) -> None:
        """Write every buffered object in one transaction."""
        with self._lock:
            pending, self._pending = self._pending, {}
            if not pending:
                return
            rows = [(*key, jsonio.dumps(obj)) for key, obj in pending.items()]
            with self._conn:
                self._conn.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)", rows)

    def load(self, create_realm: Callable[[RealmSettings], object],
             load_object: Callable[[str, str, dict], None]) -> list[str]:
        """Replay the file through the two callbacks; return the realm ids found."""
        with self._lock:
            realms = self._conn.execute("SELECT settings FROM realms ORDER BY rowid").fetchall()
            objects = self._conn.execute("SELECT realm_id, entity, body FROM objects ORDER BY rowid").fetchall()
        # The callbacks flush through this object, so they run without holding its lock.
        self._loading = True
        try:
            ids = []
            for (settings,) in realms:
                realm_settings = RealmSettings(**jsonio.loads(settings))
                create_realm(realm_settings)
                ids.append(realm_settings.realm_id)
            for realm_id, entity, body in objects:
                load_object(realm_id, entity, jsonio.loads(body))
            return ids
        finally:
            self._loading = False

    def close(self) -> None:
        """Flush and close the file."""
        self.flush()
        with self._lock:
            self._conn.close()
