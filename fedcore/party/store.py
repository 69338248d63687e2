"""The job store: every job this party took part in, in SQLite under the party's state folder.

Theory of operation
-------------------
One database file, ``<state dir>/jobs.sqlite3``, written by the daemon only (WAL mode, one
connection behind a lock: the daemon's threads share it). Its schema has a version
(``PRAGMA user_version``) and ``MIGRATIONS`` brings an older file up to date when it is
opened; a file from a newer fedcore is refused rather than guessed at.

Tables: ``jobs`` (one row per job: script, hash, params, initiator, parties, state, step,
times), ``states`` (every state change with its time), ``outcomes`` (each party's outcome as
this party knows it: all parties at the initiator, its own elsewhere), ``events``
(progress, the latest ``MAX_EVENTS`` per job), ``metrics`` (what a script reported per
round) and ``logs`` (the job's log lines, the latest ``MAX_LOG_LINES``).

A result is stored as JSON text, except that numpy arrays of ``NPY_MIN_ITEMS`` items or
more go to ``.npy`` files in the job's folder (``<state dir>/jobs/<job id>/``) and the JSON
holds a reference ``{"__npy__": file}``: a model's weights are not a megabyte of text.
When the daemon starts, jobs the store still has as proposed or running were cut off by a
crash or a kill: ``interrupt_unfinished`` marks them ``interrupted``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from fedcore.errors import ConfigError, ProtocolError
from fedcore.party.messages import Ok, Outcome, Progress, RemoteError
from fedcore.results import jsonable

MAX_EVENTS = 1000
MAX_LOG_LINES = 2000
MAX_METRIC_ROWS = 10_000
NPY_MIN_ITEMS = 256
_NPY_KEY = "__npy__"

MIGRATIONS: tuple[str, ...] = (
    # 1: jobs, their state changes, outcomes, progress events and log lines
    """
    CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY, script TEXT NOT NULL, sha256 TEXT NOT NULL, params TEXT NOT NULL,
        seed INTEGER NOT NULL, timeout_s REAL NOT NULL, initiator TEXT NOT NULL, parties TEXT NOT NULL,
        state TEXT NOT NULL, step TEXT, error TEXT, created REAL NOT NULL, started REAL, ended REAL);
    CREATE TABLE states (job_id TEXT NOT NULL, state TEXT NOT NULL, at REAL NOT NULL, reason TEXT);
    CREATE TABLE outcomes (
        job_id TEXT NOT NULL, party TEXT NOT NULL, ok INTEGER NOT NULL, result TEXT,
        step TEXT, kind TEXT, message TEXT, PRIMARY KEY (job_id, party));
    CREATE TABLE events (
        job_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (job_id, seq));
    CREATE TABLE logs (job_id TEXT NOT NULL, at REAL NOT NULL, line TEXT NOT NULL);
    CREATE INDEX states_job ON states (job_id);
    CREATE INDEX logs_job ON logs (job_id);
    """,
    # 2: per-round metrics, and the job's wall time as the initiator measured it
    """
    CREATE TABLE metrics (
        job_id TEXT NOT NULL, round INTEGER NOT NULL, party TEXT NOT NULL, body TEXT NOT NULL);
    CREATE INDEX metrics_job ON metrics (job_id);
    ALTER TABLE jobs ADD COLUMN seconds REAL;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_JOB_COLUMNS = (
    "job_id", "script", "sha256", "params", "seed", "timeout_s", "initiator", "parties",
    "state", "step", "error", "created", "started", "ended", "seconds",
)  # fmt: skip
_SELECT_JOBS = f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs"  # noqa: S608 - fixed column names


class JobStore:
    """The party's persistent job records.

    Args:
        folder: the party's state folder (created 0700 if missing).
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = self.folder / "jobs.sqlite3"
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            migrate(self._db, self.path)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"job store {self.path} is not a readable SQLite database: {exc}") from None
        self.path.chmod(0o600)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def job_folder(self, job_id: str) -> Path:
        """``<state dir>/jobs/<job id>/`` (made on first use)."""
        folder = self.folder / "jobs" / job_id
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder

    # ------------------------------------------------------------------ writes

    def add_job(self, record: dict[str, Any]) -> None:
        """Insert a new job (``record`` has the ``jobs`` columns, params and parties as values)."""
        row = {
            **record,
            "params": json.dumps(jsonable(record["params"])),
            "parties": json.dumps(list(record["parties"])),
        }
        names = [c for c in _JOB_COLUMNS if c in row]
        with self._tx() as db:
            db.execute(
                f"INSERT INTO jobs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",  # noqa: S608
                [row[c] for c in names],
            )
            db.execute(
                "INSERT INTO states VALUES (?, ?, ?, NULL)", (row["job_id"], row["state"], row["created"])
            )

    def set_state(
        self,
        job_id: str,
        state: str,
        *,
        at: float,
        reason: str | None = None,
        started: float | None = None,
        ended: float | None = None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state = ?, error = COALESCE(?, error), "
                "started = COALESCE(?, started), ended = COALESCE(?, ended) WHERE job_id = ?",
                (state, reason, started, ended, job_id),
            )
            db.execute("INSERT INTO states VALUES (?, ?, ?, ?)", (job_id, state, at, reason))

    def set_fields(self, job_id: str, **values: Any) -> None:
        """Update ``step`` or ``seconds`` of a job."""
        names = [k for k in values if k in ("step", "seconds")]
        with self._tx() as db:
            db.execute(
                f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in names)} WHERE job_id = ?",  # noqa: S608
                [*(values[k] for k in names), job_id],
            )

    def add_event(self, job_id: str, seq: int, event: Progress) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO events VALUES (?, ?, ?)", (job_id, seq, json.dumps(event.to_json()))
            )
            if seq % 100 == 0:  # trimming on every insert would make a chatty script quadratic
                db.execute("DELETE FROM events WHERE job_id = ? AND seq <= ?", (job_id, seq - MAX_EVENTS))

    def add_metrics(self, job_id: str, party: str, round_: int, values: dict[str, Any]) -> None:
        with self._tx() as db:
            (count,) = db.execute("SELECT COUNT(*) FROM metrics WHERE job_id = ?", (job_id,)).fetchone()
            if count < MAX_METRIC_ROWS:
                db.execute(
                    "INSERT INTO metrics VALUES (?, ?, ?, ?)",
                    (job_id, round_, party, json.dumps(jsonable(values))),
                )

    def add_log(self, job_id: str, line: str, at: float | None = None) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO logs VALUES (?, ?, ?)", (job_id, at or time.time(), line[:4000]))
            db.execute(
                "DELETE FROM logs WHERE job_id = ? AND rowid <= "
                "(SELECT rowid FROM logs WHERE job_id = ? ORDER BY rowid DESC LIMIT 1 OFFSET ?)",
                (job_id, job_id, MAX_LOG_LINES),
            )

    def set_outcome(self, job_id: str, party: str, outcome: Outcome) -> None:
        """Record ``party``'s outcome; large arrays of an ok result become .npy files."""
        row: tuple[Any, ...]
        if isinstance(outcome, Ok):
            text = json.dumps(self._externalize(job_id, party, outcome.result))
            row = (job_id, party, 1, text, None, None, None)
        else:
            row = (job_id, party, 0, None, outcome.step, outcome.kind, outcome.message)
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?, ?, ?, ?)", row)

    def interrupt_unfinished(self, reason: str) -> list[str]:
        """Mark every proposed or running job ``interrupted`` (the daemon died while it ran)."""
        now = time.time()
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id FROM jobs WHERE state IN ('proposed', 'running')"
            ).fetchall()
        ids = [r[0] for r in rows]
        for job_id in ids:
            self.set_state(job_id, "interrupted", at=now, reason=reason, ended=now)
        return ids

    # ------------------------------------------------------------------ reads

    def jobs(self, limit: int = 500) -> list[dict[str, Any]]:
        """Every job, newest first (at most ``limit``)."""
        with self._lock:
            rows = self._db.execute(
                _SELECT_JOBS + " ORDER BY created DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_job_row(r) for r in rows]

    def job(self, job_id: str) -> dict[str, Any]:
        """One job's row.

        Raises:
            ProtocolError: no such job here.
        """
        with self._lock:
            row = self._db.execute(
                _SELECT_JOBS + " WHERE job_id = ?",
                (job_id,),
            ).fetchone()
        if row is None:
            raise ProtocolError(f"no job {job_id!r} in this party's job store (see: fedcore job list)")
        return _job_row(row)

    def counts(self) -> dict[str, int]:
        """Jobs by state."""
        with self._lock:
            return dict(self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())

    def states(self, job_id: str) -> list[dict[str, Any]]:
        rows = self._select("SELECT state, at, reason FROM states WHERE job_id = ? ORDER BY rowid", job_id)
        return [{"state": s, "at": at, "reason": reason} for s, at, reason in rows]

    def events(self, job_id: str, limit: int = MAX_EVENTS) -> list[dict[str, Any]]:
        rows = self._select(
            "SELECT body FROM (SELECT seq, body FROM events WHERE job_id = ? "
            "ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            job_id,
            limit,
        )
        return [json.loads(body) for (body,) in rows]

    def metrics(self, job_id: str) -> list[dict[str, Any]]:
        rows = self._select("SELECT round, party, body FROM metrics WHERE job_id = ? ORDER BY rowid", job_id)
        return [{"round": rnd, "party": party, **json.loads(body)} for rnd, party, body in rows]

    def logs(self, job_id: str) -> list[str]:
        rows = self._select("SELECT at, line FROM logs WHERE job_id = ? ORDER BY rowid", job_id)
        return [f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(at))} {line}" for at, line in rows]

    def outcomes(self, job_id: str) -> dict[str, Outcome]:
        """Each party's outcome, with .npy arrays loaded back."""
        rows = self._select(
            "SELECT party, ok, result, step, kind, message FROM outcomes WHERE job_id = ? ORDER BY rowid",
            job_id,
        )
        out: dict[str, Outcome] = {}
        for party, ok, result, step, kind, message in rows:
            if ok:
                out[party] = Ok(self._internalize(job_id, json.loads(result)))
            else:
                out[party] = RemoteError(party, step, kind, message)
        return out

    def _select(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # ------------------------------------------------------------------ arrays as files

    def _externalize(self, job_id: str, party: str, value: Any) -> Any:
        counter = iter(range(1 << 30))

        def walk(v: Any) -> Any:
            if isinstance(v, np.ndarray) and v.size >= NPY_MIN_ITEMS and v.dtype != object:
                name = f"result-{party}-{next(counter)}.npy"
                np.save(self.job_folder(job_id) / name, v, allow_pickle=False)
                return {_NPY_KEY: name}
            if isinstance(v, dict):
                return {str(k): walk(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [walk(x) for x in v]
            return jsonable(v)

        return walk(value)

    def _internalize(self, job_id: str, value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {_NPY_KEY} and isinstance(value[_NPY_KEY], str):
                name = Path(value[_NPY_KEY]).name  # only ever a file of this job's own folder
                return np.load(self.folder / "jobs" / job_id / name, allow_pickle=False)
            return {k: self._internalize(job_id, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._internalize(job_id, v) for v in value]
        return value


def migrate(db: sqlite3.Connection, path: Path) -> int:
    """Apply the migrations ``path`` lacks; returns the schema version now.

    Raises:
        ConfigError: the file's schema is newer than this fedcore knows.
    """
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"job store {path} has schema version {version}, newer than this fedcore's "
            f"{SCHEMA_VERSION}: upgrade fedcore, or point [state] dir elsewhere"
        )
    for number in range(version, SCHEMA_VERSION):
        db.executescript(f"BEGIN; {MIGRATIONS[number]}; PRAGMA user_version = {number + 1}; COMMIT;")
    return SCHEMA_VERSION


def _job_row(row: tuple[Any, ...]) -> dict[str, Any]:
    job = dict(zip(_JOB_COLUMNS, row, strict=True))
    job["params"] = json.loads(job["params"])
    job["parties"] = json.loads(job["parties"])
    return job
