"""Security issue 12, findings 4, 6 and 7, against the real app and real sockets:
DNS rebinding (Host allowlist, no Location from Host), the token on reads, denial of
service (template formatting, chunked uploads, pixel bombs, model waits) and secrets
(passwords in API errors, `stats`, logs; `sql --timeout nan`)."""

from __future__ import annotations

import base64
import http.client
import io
import logging
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from assetdb.api.app import create_app
from assetdb.api.config import ApiConfig, api_config_from_env
from assetdb.config import Settings
from assetdb.errors import ConfigError
from tests.api_support import assetdb_serve, free_port, make_catalogue, running_server
from tests.conftest import run_cli

CONFIG = ApiConfig(token=None, max_upload_bytes=2**20, max_results=500)
LOOPBACK = "http://127.0.0.1:8000"
SECRET = "S3cr3t-pw"
HOSTILE = "rebind.example"


@pytest.fixture
def catalogue(initialised, encoder, tmp_path) -> dict[str, int]:
    return make_catalogue(initialised, encoder, tmp_path)


def client_for(settings: Settings, encoder: object, **config: object) -> TestClient:
    return TestClient(create_app(settings, encoder, replace(CONFIG, **config)),
                      base_url=LOOPBACK)


def png_bytes(size: tuple[int, int] = (96, 64), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


def raw_request(port: int, method: str, path: str, host: str | None,
                headers: dict[str, str] | None = None, body: bytes | None = None,
                http10: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One request over a real socket with exactly this Host header (or none)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    if http10:
        conn._http_vsn, conn._http_vsn_str = 10, "HTTP/1.0"  # HTTP/1.0 needs no Host
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", host)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


# --- Finding 4: DNS rebinding ---------------------------------------------------------


def test_hostile_host_is_refused_before_any_route(initialised, encoder, catalogue):
    rid = catalogue["green-1.png"]
    with client_for(initialised, encoder) as c:
        for host in (HOSTILE, f"{HOSTILE}:8000", "127.0.0.1.nip.io", "localhost.evil.example",
                     "", "[::2]:8000"):
            r = c.get("/api/search", params={"q": "red"}, headers={"Host": host})
            assert r.status_code == 400, host
            assert r.json()["status"] == 400 and HOSTILE not in r.text
            patch = c.patch(f"/api/assets/{rid}", json={"title": "pwned"},
                            headers={"Host": host})
            assert patch.status_code == 400, host
        assert c.get(f"/api/assets/{rid}").json()["title"] == "Green field"  # unchanged
        for host in ("localhost", "localhost:8000", "LOCALHOST.", "127.0.0.1", "127.0.0.1:1",
                     "[::1]", "[::1]:8000"):
            assert c.get("/api/info", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_setting_and_option(initialised, encoder, monkeypatch):
    monkeypatch.setenv("ASSETDB_API_ALLOWED_HOSTS", "assets.example.com, Photos.Example.org")
    config = api_config_from_env()
    assert config.allowed_hosts[:3] == ("localhost", "127.0.0.1", "[::1]")
    with TestClient(create_app(initialised, encoder, config), base_url=LOOPBACK) as c:
        for host in ("assets.example.com", "assets.example.com:443", "photos.example.org",
                     "localhost:9000"):
            assert c.get("/api/info", headers={"Host": host}).status_code == 200, host
        for host in (HOSTILE, "example.com", "x.assets.example.com"):
            assert c.get("/api/info", headers={"Host": host}).status_code == 400, host
    from assetdb.cli.serve_cmds import bound_host_name

    # A specific address that is bound is answered; a wildcard adds no name.
    assert bound_host_name("192.168.1.20") == ("192.168.1.20",)
    assert bound_host_name("fd00::5") == ("[fd00::5]",)
    assert bound_host_name("0.0.0.0") == () and bound_host_name("127.0.0.1") == ()  # noqa: S104


def test_no_location_is_built_from_host(initialised, encoder):
    """A trailing-slash path used to redirect to http://<Host>/...: now nothing redirects."""
    with running_server(create_app(initialised, encoder, CONFIG)) as base:
        port = urlsplit(base).port
        for host in (HOSTILE, f"127.0.0.1:{port}"):
            for path in ("/api/search/?q=red", "/api/info/", "/static", "/docs/"):
                status, headers, body = raw_request(port, "GET", path, host)
                assert status in (400, 404), (host, path, status)
                assert "location" not in headers, (host, path)
                assert HOSTILE.encode() not in body


def test_assetdb_serve_answers_only_its_own_names(initialised, catalogue):
    """The real `assetdb serve`, in its own process, over real sockets."""
    port = free_port()
    ready = lambda: raw_request(port, "GET", "/api/info", f"localhost:{port}")  # noqa: E731
    with assetdb_serve(port, ready) as served:
        assert served.first[0] == 200
        status, _, body = raw_request(port, "GET", "/api/search?q=red", HOSTILE)
        assert status == 400 and b'"error"' in body and b"Green" not in body
        rid = catalogue["green-1.png"]
        status, _, _ = raw_request(port, "PATCH", f"/api/assets/{rid}", f"{HOSTILE}:{port}",
                                   {"Content-Type": "application/json"}, b'{"title": "pwned"}')
        assert status == 400
        status, headers, _ = raw_request(port, "GET", "/api/search/?q=red", HOSTILE)
        assert status == 400 and "location" not in headers
        status, _, _ = raw_request(port, "GET", "/api/info", None, http10=True)  # no Host
        assert status == 400
        status, _, body = raw_request(port, "GET", f"/api/assets/{rid}", f"127.0.0.1:{port}")
        assert status == 200 and b"Green field" in body
    assert "Answering Host names: localhost, 127.0.0.1, [::1]" in served.output


def test_serve_beyond_loopback_needs_a_token(monkeypatch):
    monkeypatch.delenv("ASSETDB_API_TOKEN", raising=False)
    for host in ("0.0.0.0", "192.168.1.20", "::"):  # noqa: S104
        r = run_cli("serve", "--host", host, "--port", str(free_port()))
        assert r.exit_code == 2, r.output
        assert "ASSETDB_API_TOKEN" in r.output and "--insecure-no-token" in r.output
        assert "Traceback" not in r.output and "Loading model" not in r.output
    assert "--insecure-no-token" in run_cli("serve", "--help").output


# --- The token on reads ----------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def test_protected_reads_need_the_token_everywhere(initialised, encoder, catalogue):
    rid = catalogue["red-1.png"]
    paths = ["/", "/docs", "/openapi.json", "/static/app.js", "/api/info",
             "/api/search?q=red", "/api/assets", f"/api/assets/{rid}",
             f"/api/assets/{rid}/similar", f"/api/assets/{rid}/thumbnail",
             f"/api/assets/{rid}/original"]
    with client_for(initialised, encoder, token="tok-123", protect_reads=True) as c:
        for path in paths:
            r = c.get(path)
            assert r.status_code == 401, path
            assert r.json()["status"] == 401
            # The browser asks for the token with its own prompt (Basic), once per site.
            assert 'Basic realm="assetdb"' in r.headers.get_list("www-authenticate")[0]
            assert c.get(path, headers=basic("me", "wrong")).status_code == 401, path
            assert c.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
            for good in (basic("", "tok-123"), basic("anyone", "tok-123"),
                         {"Authorization": "Bearer tok-123"}, {"X-API-Token": "tok-123"}):
                assert c.get(path, headers=good).status_code == 200, (path, good)
        upload = c.post("/api/search/image", files={"file": ("q.png", png_bytes(), "image/png")})
        assert upload.status_code == 401
        assert c.get("/api/info", headers=basic("me", "tok-123")).json()[
            "token_required_for_reads"] is True
        # Writes still need the token, whichever way it comes.
        edit = c.patch(f"/api/assets/{rid}", json={"title": "x"}, headers=basic("me", "tok-123"))
        assert edit.status_code == 200
    with pytest.raises(ConfigError, match="ASSETDB_API_TOKEN"):
        ApiConfig(token=None, max_upload_bytes=1, max_results=1, protect_reads=True)


def test_protect_reads_setting(monkeypatch):
    monkeypatch.setenv("ASSETDB_API_PROTECT_READS", "1")
    monkeypatch.delenv("ASSETDB_API_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="ASSETDB_API_TOKEN"):
        api_config_from_env()
    monkeypatch.setenv("ASSETDB_API_TOKEN", "t")
    assert api_config_from_env().protect_reads is True
    monkeypatch.setenv("ASSETDB_API_PROTECT_READS", "maybe")
    with pytest.raises(ConfigError, match="ASSETDB_API_PROTECT_READS"):
        api_config_from_env()


# --- Finding 6: denial of service -------------------------------------------------------


def test_templates_are_not_formatted(initialised, encoder):
    from assetdb.classify.zeroshot import fill_template

    assert fill_template("a photo of a {}.", "{0} {x}") == "a photo of a {0} {x}."
    with client_for(initialised, encoder) as c:
        def classify(labels: str, templates: list[str] | None = None) -> object:
            data: dict[str, object] = {"labels": labels}
            if templates:
                data["templates"] = templates
            return c.post("/api/classify", data=data,
                          files={"file": ("q.png", png_bytes(), "image/png")})

        for bomb in ("{:>10000000}{{}}", "{:>1000000000}{}", "{0}{}", "{}{}", "{x} {}"):
            start = time.monotonic()
            r = classify("cat,dog", [bomb])
            assert r.status_code == 400, (bomb, r.text)
            assert "exactly one {}" in r.json()["error"]
            assert time.monotonic() - start < 2
        ok = classify("{cat},dog", ["a {} photo"])  # braces in a label are just text
        assert ok.status_code == 200 and {x["label"] for x in ok.json()["labels"]} == {
            "{cat}", "dog"}
        assert "longer than 200" in classify("cat," + "x" * 201).json()["error"]
        assert "longer than 300" in classify("cat", ["{}" + "x" * 300]).json()["error"]
        assert "too many labels" in classify(",".join(f"l{i}" for i in range(101))).json()[
            "error"]
        too_many = classify("cat", [f"{{}} {i}" for i in range(11)])
        assert too_many.status_code == 400 and "too many templates" in too_many.json()["error"]


def test_cli_templates_are_not_formatted(initialised, tmp_path):
    from tests.images import noise

    path = noise(tmp_path / "one.png", seed=7)
    for args in (["classify", str(path), "--labels", "cat,dog", "--template", "{:>999999999}{}"],
                 ["concept", "add", "c1", "red", "--template", "{:>999999999}{}"],
                 ["embed-text", "red", "--template", "{0}{}"],
                 ["classify", str(path), "--labels", "cat," + "y" * 201]):
        start = time.monotonic()
        r = run_cli(*args)
        assert r.exit_code == 1, (args, r.output)
        assert "Error:" in r.output and "Traceback" not in r.output
        assert time.monotonic() - start < 5


def chunked_upload(base: str, total: int, chunk: int = 64 * 2**10) -> tuple[bytes, int]:
    """POST a multipart upload with Transfer-Encoding: chunked (no Content-Length),
    stopping as soon as the server answers; returns (its answer, bytes sent)."""
    port = urlsplit(base).port
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        f"POST /api/search/image HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
        .encode())
    preamble = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
                b"Content-Type: image/png\r\n\r\n")
    sent = 0
    frames = [preamble, b"\0" * chunk]
    try:
        while sent < total:
            data = frames[0] if sent == 0 else frames[1]
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered
            sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            sent += len(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server stopped reading: its answer is waiting
    answer = b""
    try:
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except (ConnectionResetError, TimeoutError):
        pass
    finally:
        sock.close()
    return answer, sent


def test_chunked_upload_refused_while_streaming(settings, encoder):
    limit = 2**20
    total = 64 * 2**20
    with running_server(create_app(settings, encoder, replace(CONFIG, max_upload_bytes=limit))
                        ) as base:
        answer, sent = chunked_upload(base, total)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"larger than 1048576 bytes" in answer
        # Answered while the client was still sending: far less than the whole body went
        # out (the limit plus the multipart allowance plus what socket buffers hold).
        assert sent < 16 * 2**20, sent
        # A declared Content-Length over the limit is refused before any body is sent.
        port = urlsplit(base).port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("POST", "/api/search/image")
        conn.putheader("Content-Length", str(10 * 2**30))
        conn.putheader("Content-Type", "multipart/form-data; boundary=b")
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413
        conn.close()
        # The server is still healthy.
        status, _, _ = raw_request(port, "GET", "/api/info", f"127.0.0.1:{port}")
        assert status == 200


def test_pixel_bombs_are_refused_before_decoding(initialised, encoder):
    from assetdb.api.config import DEFAULT_MAX_UPLOAD_PIXELS

    assert DEFAULT_MAX_UPLOAD_PIXELS <= 40_000_000  # well below Pillow's ~89 MP
    bomb = png_bytes((4000, 3000), mode="L")  # 12 MP of zeros: a few KB of PNG
    assert len(bomb) < 50_000
    with client_for(initialised, encoder, max_upload_pixels=10_000_000) as c:
        for path, data in (("/api/search/image", {}), ("/api/classify", {"labels": "cat,dog"})):
            start = time.monotonic()
            r = c.post(path, data=data, files={"file": ("b.png", bomb, "image/png")})
            assert r.status_code == 400, r.text
            assert "4000x3000 pixels" in r.json()["error"]
            assert time.monotonic() - start < 1.5  # no decode happened
        ok = c.post("/api/search/image",
                    files={"file": ("s.png", png_bytes((400, 300)), "image/png")})
        assert ok.status_code in (200, 503), ok.text  # decoded; 503: database not initialised


def test_model_waits_are_bounded(initialised, encoder):
    app = create_app(initialised, encoder, replace(CONFIG, busy_timeout_s=0.3))
    with TestClient(app, base_url=LOOPBACK) as c:
        with app.state.model_gate.hold():  # another request is using the model
            start = time.monotonic()
            r = c.get("/api/search", params={"q": "red"})
            assert r.status_code == 503 and "busy" in r.json()["error"]
            assert r.headers["retry-after"] == "5"
            classify = c.post("/api/classify", data={"labels": "cat,dog"},
                              files={"file": ("q.png", png_bytes(), "image/png")})
            assert classify.status_code == 503
            assert time.monotonic() - start < 5
        assert c.get("/api/search", params={"q": "red"}).status_code == 200  # free again


# --- Finding 7: secrets -------------------------------------------------------------------


def unreachable_dsns(tmp_path) -> list[str]:
    port = free_port()  # nothing listens there
    return [
        f"postgresql://u:{SECRET}@127.0.0.1:{port}/db",
        f"postgresql://:{SECRET}@127.0.0.1:{port}/db",
        f"postgresql://127.0.0.1:{port}/db?password={SECRET}",
        f"postgresql://u@/db?host={tmp_path}/no-socket-here&password={SECRET}",
        f"host=127.0.0.1 port={port} password={SECRET} dbname=db",
    ]


@pytest.fixture
def no_database(monkeypatch, tmp_path, tiny_model_dir) -> Iterator[None]:
    from assetdb.db.engine import reset_engines

    monkeypatch.setenv("ASSETDB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ASSETDB_MODEL", str(tiny_model_dir))
    yield
    reset_engines()


def test_api_errors_never_show_the_password(no_database, encoder, monkeypatch, tmp_path):
    for dsn in unreachable_dsns(tmp_path):
        monkeypatch.setenv("ASSETDB_DATABASE_URL", dsn)
        with TestClient(create_app(Settings.from_env(), encoder, CONFIG), base_url=LOOPBACK,
                        raise_server_exceptions=False) as c:
            for r in (c.get("/api/search", params={"q": "red"}), c.get("/api/assets/1"),
                      c.get("/api/assets")):
                assert r.status_code == 503, (dsn, r.text)
                assert SECRET not in r.text and "pw" not in r.text, (dsn, r.text)


def test_unexpected_errors_log_no_password(settings, encoder, caplog, monkeypatch):
    dsn = f"postgresql://u:{SECRET}@127.0.0.1:1/db"
    monkeypatch.setenv("ASSETDB_DATABASE_URL", dsn)
    app = create_app(Settings.from_env(), encoder, CONFIG)

    @app.get("/api/boom")
    def boom() -> None:
        raise RuntimeError(f"driver said: {dsn}")

    with caplog.at_level(logging.ERROR, logger="assetdb.api"):
        with TestClient(app, base_url=LOOPBACK, raise_server_exceptions=False) as c:
            assert c.get("/api/boom").status_code == 500
    assert "driver said" in caplog.text and SECRET not in caplog.text


def test_stats_never_shows_the_password(no_database, monkeypatch, tmp_path):
    for dsn in unreachable_dsns(tmp_path):
        monkeypatch.setenv("ASSETDB_DATABASE_URL", dsn)
        for command in (["stats"], ["stats", "--json"], ["init"]):
            r = run_cli(*command)
            assert r.exit_code == 1, (dsn, r.output)
            assert SECRET not in r.output and "pw" not in r.output, (dsn, r.output)
            assert "Traceback" not in r.output


def test_stats_masks_the_password_of_a_reachable_database(initialised, database_url,
                                                           monkeypatch, pg_home):
    from assetdb.db import embedded
    from assetdb.db.engine import reset_engines

    # The real superuser password, given in the URL forms instead of the passfile.
    secret = embedded.superuser_passfile(pg_home).read_text().strip().rsplit(":", 1)[1]
    base, _, query = database_url.partition("?")
    query = "&".join(p for p in query.split("&") if not p.startswith("passfile="))
    scheme, _, rest = base.partition("://")
    userinfo, _, hostpart = rest.partition("@")
    forms = [f"{base}?{query}&password={secret}",
             f"{scheme}://{userinfo}:{secret}@{hostpart}?{query}"]
    for dsn in forms:
        monkeypatch.setenv("ASSETDB_DATABASE_URL", dsn)
        reset_engines()
        for command in (["stats"], ["stats", "--json"], ["init"]):
            r = run_cli(*command)
            assert r.exit_code == 0, (command, r.output)
            assert secret not in r.output and "***" in r.output, r.output


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0", "abc", "1e12"])
def test_sql_timeout_must_be_a_positive_finite_number(value):
    r = run_cli("sql", "SELECT 1", "--timeout", value)
    assert r.exit_code == 2, r.output
    assert "Invalid value for '--timeout'" in r.output and "Traceback" not in r.output
