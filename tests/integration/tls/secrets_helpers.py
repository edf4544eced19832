"""A database URL that carries a password, to check that it never shows."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit


def url_with_password(database_url: str) -> tuple[str, str] | None:
    """(URL, password): the test database's own password if its URL has one; else the
    embedded server's URL with an invented one (its Unix socket trusts local users, so the
    password is accepted and ignored). None for an external server without a password, which
    might refuse an invented one."""
    parts = urlsplit(database_url)
    if parts.password:
        return database_url, parts.password
    if os.environ.get("TEST_DATABASE_URL"):
        return None
    secret = f"pw-{uuid.uuid4().hex}"
    user, _, host = parts.netloc.rpartition("@")
    netloc = f"{user or 'postgres'}:{secret}@{host}"
    return urlunsplit(parts._replace(netloc=netloc)), secret
