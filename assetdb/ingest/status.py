"""The processing state of the catalogue, for `assetdb status`: counts, workers, leases,
recent failures, re-embed progress."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from assetdb.config import Settings
from assetdb.db import schema
from assetdb.db.engine import connect
from assetdb.ingest.heartbeat import DEAD_AFTER_S, pid_alive
from assetdb.ingest.model_switch import runner_alive, running_job, shadow_type


def _rows(result: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in result]


def liveness(heartbeat_late: bool, hostname: str, pid: int | None) -> str:
    """'running' or 'dead' for a process that says it runs: a killed process cannot say it
    stopped, so it is dead when its heartbeat is late or, on this host, its pid is gone."""
    if heartbeat_late or pid_alive(hostname, pid) is False:
        return "dead"
    return "running"


def _workers(conn: Connection) -> list[dict[str, Any]]:
    workers = _rows(conn.execute(text(
        """
        SELECT w.id, w.hostname, w.pid, w.model, w.state,
               w.last_seen < now() - make_interval(secs => :dead) AS heartbeat_late,
               w.started_at, w.last_seen, w.embedded, w.failed,
               COALESCE(l.leases, 0) AS leases, l.lease_expires_at
        FROM assetdb_workers w
        LEFT JOIN (SELECT lease_owner, count(*) AS leases,
                          max(lease_expires_at) AS lease_expires_at
                   FROM assets WHERE status = 'pending' AND lease_owner IS NOT NULL
                   GROUP BY lease_owner) l ON l.lease_owner = w.id
        WHERE w.state = 'running' OR l.leases > 0
           OR w.last_seen >= now() - interval '1 hour'
        ORDER BY w.started_at
        """
    ), {"dead": DEAD_AFTER_S}))
    for w in workers:
        late = w.pop("heartbeat_late")
        if w["state"] == "running":
            w["state"] = liveness(late, w["hostname"], w["pid"])
    return workers


def status(settings: Settings, *, failures: int = 10) -> dict[str, Any]:
    with connect(settings) as conn:
        meta = schema.require_meta(conn)
        by_status = {s: 0 for s in ("pending", "ready", "failed")}
        by_status.update({k: n for k, n in conn.execute(text(
            "SELECT status, count(*) FROM assets GROUP BY status"
        )).all()})
        pending = dict(conn.execute(text(
            """
            SELECT
              count(*) FILTER (WHERE lease_owner IS NOT NULL AND lease_expires_at >= now())
                AS leased,
              count(*) FILTER (WHERE lease_owner IS NOT NULL AND lease_expires_at < now())
                AS expired_leases,
              count(*) FILTER (WHERE lease_owner IS NULL AND lease_expires_at >= now())
                AS waiting_retry,
              count(*) FILTER (WHERE lease_expires_at IS NULL OR lease_expires_at < now())
                AS claimable
            FROM assets WHERE status = 'pending'
            """
        )).one()._mapping)
        workers = _workers(conn)
        leases = _rows(conn.execute(text(
            """
            SELECT lease_owner AS worker, count(*) AS rows, min(lease_expires_at) AS expires_at,
                   bool_or(lease_expires_at < now()) AS expired
            FROM assets WHERE status = 'pending' AND lease_owner IS NOT NULL
            GROUP BY lease_owner ORDER BY 1
            """
        )))
        recent_failures = _rows(conn.execute(text(
            "SELECT id, uri, attempts, error, updated_at FROM assets WHERE status = 'failed' "
            "ORDER BY updated_at DESC, id DESC LIMIT :n"
        ), {"n": failures}))
        job = running_job(conn)
        reembed: dict[str, Any] | None = None
        if job is not None:
            done, total = int(job.done), int(job.total)
            if job.switch and shadow_type(conn) is not None:
                # Live numbers: rows embedded meanwhile by workers also need their vector.
                done, total = conn.execute(text(
                    "SELECT count(*) FILTER (WHERE embedding_next_model = :m), count(*) "
                    "FROM assets WHERE status = 'ready'"
                ), {"m": job.target_model}).one()
            elapsed = conn.execute(text("SELECT extract(epoch FROM now() - :t)"),
                                   {"t": job.started_at}).scalar_one()
            # running: its process beats; dead: killed (run the command again to resume);
            # interrupted: stopped cleanly, to be resumed.
            state = "interrupted" if job.pid is None else (
                "running" if runner_alive(conn, job) else "dead")
            reembed = {
                "job": job.id, "state": state, "hostname": job.hostname, "pid": job.pid,
                "last_seen": job.last_seen,
                "target_model": job.target_model, "dimension": job.dimension,
                "switch": job.switch, "filters": job.filters, "done": done, "total": total,
                "failed": int(job.failed), "started_at": job.started_at,
                "updated_at": job.updated_at, "elapsed_s": round(float(elapsed), 1),
            }
    return {
        "model": meta["model"],
        "dimension": int(meta["dimension"]),
        "by_status": by_status,
        "pending": pending,
        "workers": workers,
        "leases": leases,
        "recent_failures": recent_failures,
        "reembed": reembed,
    }
