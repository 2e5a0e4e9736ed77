"""Optional SQLite persistence for the local HubSpot: one key-value table of JSON documents by kind.

The store keeps everything in memory and writes each changed document through (``put``); ``load`` reads the
file back at start-up. Writes from one store operation are committed together by ``flush``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import Any

_SCHEMA = "CREATE TABLE IF NOT EXISTS documents (kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, " \
          "PRIMARY KEY (kind, key))"


class Persister:
    """Buffers changed documents and writes them to one SQLite file; thread-safe."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], Any] = {}
        with self._lock, self._conn:
            self._conn.execute(_SCHEMA)

    def put(self, kind: str, key: str, document: Any) -> None:
        """Buffer a document (None deletes it) until the next flush."""
        with self._lock:
            self._pending[(kind, key)] = document

    def flush(self) -> None:
        """Write every buffered change in one transaction."""
        with self._lock:
            pending, self._pending = self._pending, {}
            if not pending:
                return
            with self._conn:
                for (kind, key), document in pending.items():
                    if document is None:
                        self._conn.execute("DELETE FROM documents WHERE kind = ? AND key = ?", (kind, key))
                    else:
                        self._conn.execute("INSERT OR REPLACE INTO documents VALUES (?, ?, ?)",
                                           (kind, key, json.dumps(document, separators=(",", ":"))))

    def load(self) -> dict[str, dict[str, Any]]:
        """Return every stored document as {kind: {key: document}}."""
        with self._lock:
            rows = self._conn.execute("SELECT kind, key, body FROM documents ORDER BY rowid").fetchall()
        loaded: dict[str, dict[str, Any]] = {}
        for kind, key, body in rows:
            loaded.setdefault(kind, {})[key] = json.loads(body)
        return loaded

    def close(self) -> None:
        """Flush and close the file."""
        self.flush()
        with self._lock:
            self._conn.close()


class NullPersister:
    """Persistence turned off: every call does nothing."""

    def put(self, kind: str, key: str, document: Any) -> None:
        """Ignore the document."""

    def flush(self) -> None:
        """Nothing to write."""

    def load(self) -> dict[str, dict[str, Any]]:
        """Nothing stored."""
        return {}

    def close(self) -> None:
        """Nothing to close."""
