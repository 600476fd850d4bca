"""Connection strings: parsing, and redacting their secrets for output.

Both libpq forms are handled (a URL, with the password in the userinfo or as
`?password=`, and a key=value string), through psycopg's own conninfo parser. Anything
that reaches a user (errors, logs, `stats`, API bodies) goes through `redact_dsn` or,
for free text that may quote a connection string, `scrub`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

MASK = "***"
_URL = re.compile(r"^(postgres|postgresql)(\+\w+)?://", re.IGNORECASE)


def is_url(dsn: str) -> bool:
    return bool(_URL.match(dsn))


def password_of(dsn: str) -> str | None:
    """The password a connection string carries, in whichever form; None if none."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        value = conninfo_to_dict(_URL.sub("postgresql://", dsn, count=1)).get("password")
    except Exception:  # noqa: BLE001 - an unparseable string has no password we can name
        return None
    return str(value) if value else None


def redact_dsn(dsn: str) -> str:
    """The connection string with any password replaced by ***; the rest as given."""
    if is_url(dsn):
        try:
            parts = urlsplit(dsn)
            netloc = parts.netloc
            if "@" in netloc:
                userinfo, _, hostport = netloc.rpartition("@")
                if ":" in userinfo:
                    user = userinfo.split(":", 1)[0]
                    netloc = f"{user}:{MASK}@{hostport}"
            query = parts.query
            if query:
                pairs = [(k, MASK if k.lower() == "password" else v)
                         for k, v in parse_qsl(query, keep_blank_values=True)]
                query = urlencode(pairs, safe="/*:", quote_via=quote)
            return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
        except ValueError:
            return "<a connection URL that could not be parsed>"
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - never echo what we cannot parse: it may hold a secret
        return "<a connection string that could not be parsed>"
    if "password" in params:
        params["password"] = MASK
    return make_conninfo("", **params)


def scrub(text: str, *dsns: str | None) -> str:
    """`text` with the password of each given connection string replaced by ***."""
    for dsn in dsns:
        secret = password_of(dsn) if dsn else None
        if secret:
            text = text.replace(secret, MASK)
            quoted = quote(secret, safe="")
            if quoted != secret:
                text = text.replace(quoted, MASK)
    return text
