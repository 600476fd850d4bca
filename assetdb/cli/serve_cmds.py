"""`assetdb serve`: the HTTP API and the web search page."""

from __future__ import annotations

import click

from assetdb.cli.common import get_settings, load_model

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind. Anything but loopback exposes the catalogue: "
                   "set ASSETDB_API_TOKEN first.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535),
              help="TCP port.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(host: str, port: int, log_level: str) -> None:
    """Serve the web search page at / and the JSON API under /api (docs at /docs).

    The model is loaded once, before the server starts, and stays warm. Write
    endpoints (editing an asset) need `Authorization: Bearer $ASSETDB_API_TOKEN`
    when ASSETDB_API_TOKEN is set. Uploads are limited to ASSETDB_API_MAX_UPLOAD_MB
    (default 20); a search returns at most ASSETDB_API_MAX_RESULTS (default 500).

    \b
    Examples:
      assetdb serve                     # then open http://127.0.0.1:8000/
      assetdb serve --port 9000
      curl 'http://127.0.0.1:8000/api/search?q=red+car&kind=image&limit=5'
    """
    import os

    import uvicorn

    from assetdb.api.app import api_config_from_env, create_app

    settings = get_settings()
    config = api_config_from_env()
    if host not in LOOPBACK and not config.token:
        click.echo(f"Warning: serving on {host} without ASSETDB_API_TOKEN: anyone who can "
                   "reach this port can read the catalogue and edit assets.", err=True)
    app = create_app(settings, load_model(settings), config)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"assetdb serving http://{shown}:{port}/  (API docs: /docs)", err=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False)
