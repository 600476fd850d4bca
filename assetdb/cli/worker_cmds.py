"""`assetdb worker`, `assetdb retry` and `assetdb status`."""

from __future__ import annotations

import click

from assetdb.cli.common import get_settings, json_option, load_model
from assetdb.cli.output import kv_lines, print_json, print_table, progress_bar


@click.command()
@click.option("--batch-size", type=click.IntRange(min=1), metavar="N",
              help="Rows claimed and embedded per batch (default ASSETDB_BATCH_SIZE, 32).")
@click.option("--once", is_flag=True,
              help="Exit when nothing is left to claim instead of waiting for more.")
@click.option("--lease-seconds", type=click.FloatRange(min=0.1), metavar="S",
              help="How long claimed rows stay reserved once this worker stops renewing them "
                   "(it renews them every 2 s while alive); then other workers may take them "
                   "(default ASSETDB_LEASE_SECONDS, 600).")
@click.option("--max-attempts", type=click.IntRange(min=1), metavar="N",
              help="Claims per row before it stays failed (default ASSETDB_MAX_ATTEMPTS, 3).")
@click.option("--retry-delay", type=click.FloatRange(min=0), metavar="S",
              help="Wait before a row that failed to embed is tried again "
                   "(default ASSETDB_RETRY_DELAY, 30).")
@click.option("--poll-seconds", type=click.FloatRange(min=0.01), metavar="S",
              help="Sleep between looks at an empty queue (default ASSETDB_POLL_SECONDS, 2).")
@json_option
def worker(batch_size: int | None, once: bool, lease_seconds: float | None,
           max_attempts: int | None, retry_delay: float | None, poll_seconds: float | None,
           as_json: bool) -> None:
    """Embed pending assets (registered by `assetdb ingest --no-embed`).

    Claims batches of pending rows with FOR UPDATE SKIP LOCKED and a lease, embeds them
    with the database's model and marks each ready or failed. Run as many as you like,
    here or on other machines: each needs only ASSETDB_DATABASE_URL and read access to
    the files at the paths that were ingested. Rows of a worker that died are taken
    again once its lease expires. SIGINT/SIGTERM: the current batch is finished, then
    the worker exits 0. When `assetdb reembed` switches the model, workers load the new
    one and go on.

    \b
    Examples:
      assetdb ingest ~/Pictures -r --no-embed
      assetdb worker --once                  # drain the queue, then exit
      for i in 1 2 3 4; do assetdb worker & done
    """
    from assetdb.cli.signals import stop_on_signals
    from assetdb.ingest.worker import WorkerOptions, run_worker

    settings = get_settings()
    options = WorkerOptions.from_env(
        settings, batch_size=batch_size, once=once, lease_seconds=lease_seconds,
        max_attempts=max_attempts, retry_delay=retry_delay, poll_seconds=poll_seconds)
    bar = progress_bar(0, "embedded", unit="asset")
    bar.total = None
    seen = 0

    def on_batch(report) -> None:  # noqa: ANN001 - WorkerReport
        nonlocal seen
        bar.update(report.embedded - seen)
        seen = report.embedded

    with stop_on_signals("finishing the current batch, then exiting") as stop:
        try:
            report = run_worker(settings, lambda name: load_model(settings, name), options,
                                stop=stop, on_batch=on_batch)
        finally:
            bar.close()
    if as_json:
        print_json(report.as_dict())
        return
    click.echo(f"worker {report.worker_id}: {report.embedded} embedded, {report.failed} failed, "
               f"{report.requeued} to retry, in {report.batches} batches")
    if report.gave_up:
        click.echo(f"{report.gave_up} abandoned rows gave up (attempts used up)")


@click.command()
@click.option("--failed/--no-failed", default=True, show_default=True,
              help="Queue failed rows again, with their attempt counts reset.")
@click.option("--release-leases", is_flag=True,
              help="Also free every lease now, without waiting for it to expire. Only when "
                   "you know the workers holding them are gone.")
@json_option
def retry(failed: bool, release_leases: bool, as_json: bool) -> None:
    """Queue failed assets again for `assetdb worker`.

    \b
    Examples:
      assetdb status            # see the failures and their errors first
      assetdb retry --failed
    """
    from assetdb.ingest.worker import retry as run_retry

    out = run_retry(get_settings(), failed=failed, release_leases=release_leases)
    if as_json:
        print_json(out)
        return
    click.echo(f"{out['requeued']} failed rows queued again"
               + (f", {out['released']} leases released" if release_leases else ""))


_JOB_STATES = {
    "running": "running",
    "dead": "its process is gone (killed?): run the same `assetdb reembed` to resume",
    "interrupted": "interrupted: run the same `assetdb reembed` to resume",
}


@click.command()
@click.option("--failures", type=click.IntRange(min=0), default=10, show_default=True,
              metavar="N", help="How many recent failures to list.")
@json_option
def status(failures: int, as_json: bool) -> None:
    """Processing state: counts by status, workers and their leases, recent failures
    with their errors, and the progress of a running re-embed.

    \b
    Examples:
      assetdb status
      assetdb status --json | jq .reembed
    """
    from assetdb.ingest.status import status as get_status

    data = get_status(get_settings(), failures=failures)
    if as_json:
        print_json(data)
        return
    kv_lines([("model", f"{data['model']} ({data['dimension']}-d)"),
              *((k, v) for k, v in data["by_status"].items()),
              *((f"pending: {k.replace('_', ' ')}", v) for k, v in data["pending"].items())])
    click.echo("\nworkers:")
    print_table(data["workers"], ["id", "state", "model", "last_seen", "embedded", "failed",
                                  "leases"])
    expired = [x for x in data["leases"] if x["expired"]]
    if expired:
        click.echo("\nexpired leases (their worker is gone; other workers will take them):")
        print_table(expired, ["worker", "rows", "expires_at"])
    click.echo("\nrecent failures:")
    print_table(data["recent_failures"], ["id", "uri", "attempts", "error"], max_width=80)
    job = data["reembed"]
    if job:
        pct = 100.0 * job["done"] / job["total"] if job["total"] else 100.0
        click.echo(f"\nre-embed job {job['job']} to {job['target_model']} "
                   f"({job['dimension']}-d): {job['done']}/{job['total']} ({pct:.1f}%), "
                   f"{job['failed']} failed, started {job['elapsed_s']:.0f} s ago, "
                   f"{_JOB_STATES[job['state']]}")
