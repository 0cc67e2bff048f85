"""Writing into a test store behind the driver's back, as another program would: raw SQL on
the SQL backends' tables, raw commands on Redis keys. For tests of what the drivers do with
data they did not write (garbage in a column, a schema left older)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.backends import MYSQL_HOST, MYSQL_PORT, PG_ADMIN, REDIS_URL


def sql(backend: str, url: str, statement: str, params: tuple[Any, ...] = ()) -> None:
    """Run ``statement`` (``?`` placeholders, table names unqualified) on the store at ``url``."""
    if backend == "sqlite":
        import sqlite3

        with sqlite3.connect(urlsplit(url).path) as conn:
            conn.execute(statement, params)
    elif backend == "postgres":
        import psycopg

        schema = parse_qs(urlsplit(url).query)["schema"][0]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute(statement.replace("?", "%s"), params)
    elif backend == "mysql":
        import pymysql

        conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", password="",
                               database=urlsplit(url).path.lstrip("/"), autocommit=True)
        with conn, conn.cursor() as cur:
            cur.execute(statement.replace("?", "%s"), params)
    else:
        raise AssertionError(f"{backend} is not an SQL backend")


def redis_keys(url: str, pattern: str = "*") -> tuple[Any, list[bytes]]:
    """(a client, the keys under the URL's prefix matching ``prefix + pattern``)."""
    import redis

    prefix = parse_qs(urlsplit(url).query)["prefix"][0]
    client = redis.Redis.from_url(REDIS_URL)
    return client, list(client.scan_iter(match=prefix + pattern))
