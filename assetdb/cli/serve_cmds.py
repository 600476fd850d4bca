"""`assetdb serve`: the HTTP API and the web search page."""

from __future__ import annotations

import ipaddress

import click

from assetdb.cli.common import catalogue_meta, get_settings, load_model

WILDCARDS = ("0.0.0.0", "::", "")  # noqa: S104 - names, not a bind


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bound_host_name(host: str) -> tuple[str, ...]:
    """The Host clients send for a specific address we bind (none for a wildcard)."""
    if host in WILDCARDS or is_loopback(host):
        return ()
    return (f"[{host.strip('[]')}]",) if ":" in host else (host,)


def _refuse_busy_port(host: str, port: int) -> None:
    """A port already in use is said at once, not after the model has loaded."""
    import socket

    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise click.UsageError(f"--host {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise click.UsageError(f"cannot serve on {host}:{port}: {exc.strerror} "
                                   "(choose another --port)") from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind. Anything but loopback exposes the catalogue: it needs "
                   "ASSETDB_API_TOKEN (or --insecure-no-token).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535),
              help="TCP port.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Also answer requests for this Host name (repeatable; added to "
                   "ASSETDB_API_ALLOWED_HOSTS and the loopback names), e.g. the public name "
                   "behind a reverse proxy.")
@click.option("--insecure-no-token", is_flag=True,
              help="Serve beyond loopback without ASSETDB_API_TOKEN: anyone who can reach "
                   "the port can read the catalogue and edit assets.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(host: str, port: int, allowed_hosts: tuple[str, ...], insecure_no_token: bool,
          log_level: str) -> None:
    """Serve the web search page at / and the JSON API under /api (docs at /docs).

    The model is loaded once, before the server starts, and stays warm. Write
    endpoints (editing an asset) need `Authorization: Bearer $ASSETDB_API_TOKEN`
    when ASSETDB_API_TOKEN is set; ASSETDB_API_PROTECT_READS=1 makes every request
    need it (browsers ask for it: any user name, the token as password). Only requests
    for the loopback names, the bound address and ASSETDB_API_ALLOWED_HOSTS /
    --allowed-host are answered (a defence against DNS rebinding). Uploads are
    limited to ASSETDB_API_MAX_UPLOAD_MB (default 20); a search returns at most
    ASSETDB_API_MAX_RESULTS (default 500). Threat model and reverse-proxy set-up:
    docs/security.md.

    \b
    Examples:
      assetdb serve                     # then open http://127.0.0.1:8000/
      assetdb serve --port 9000
      ASSETDB_API_TOKEN=... assetdb serve --host 0.0.0.0 --allowed-host assets.example.com
      curl 'http://127.0.0.1:8000/api/search?q=red+car&kind=image&limit=5'
    """
    import os

    import uvicorn

    from assetdb.api.app import api_config_from_env, create_app

    config = api_config_from_env(extra_hosts=allowed_hosts + bound_host_name(host))
    if not is_loopback(host) and not config.token:
        if not insecure_no_token:
            raise click.UsageError(
                f"--host {host} serves beyond this machine, and ASSETDB_API_TOKEN is not set: "
                "anyone who can reach the port could read the catalogue and edit assets. Set "
                "ASSETDB_API_TOKEN (and ASSETDB_API_PROTECT_READS=1 to protect reads too), or "
                "pass --insecure-no-token if that is really what you want.")
        click.echo(f"Warning: serving on {host} without ASSETDB_API_TOKEN: anyone who can "
                   "reach this port can read the catalogue and edit assets.", err=True)
    _refuse_busy_port(host, port)
    settings = get_settings()
    meta = catalogue_meta(settings)  # before the model: a mistake is answered at once
    app = create_app(settings, load_model(settings, meta=meta), config)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"assetdb serving http://{shown}:{port}/  (API docs: /docs)", err=True)
    click.echo(f"Answering Host names: {', '.join(config.allowed_hosts)} (any port)", err=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False)
