"""Errors the store raises. asyncpg's own exceptions never leave store/."""


class StoreError(Exception):
    """Anything unexpected from the database (the server answers INTERNAL)."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached or was lost: refused, closed pool, too many connections,
    administrator shutdown, timeouts (the server answers UNAVAILABLE). The message is plain."""
