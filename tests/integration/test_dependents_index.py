"""The lasting index of dependents (``Driver.dependents``) is filled for jobs stored before it
existed: the Redis key layout 3 and the files format 2 backfill it on upgrade."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskqueue.drivers import open_driver
from taskqueue.drivers.files import FileDriver
from tests.backends import redis_url
from tests.conformance.test_driver import new


def test_files_format_2_indexes_the_dependents_already_stored(tmp_path: Path) -> None:
    url = f"file:{tmp_path / 'store'}"
    driver = open_driver(url)
    parent = new()
    children = [new(dependencies=(parent.id,)), new(queue_name="b", dependencies=(parent.id,))]
    driver.push([parent, *children])
    driver.close()
    # as a store written before format 2: no index, format.json lists version 1 only
    root = tmp_path / "store"
    for directory in sorted((root / "children").rglob("*"), reverse=True):
        directory.unlink() if directory.is_file() else directory.rmdir()
    (root / "format.json").write_text(json.dumps({"format": "taskqueue-files",
                                                  "migrations": [1]}))
    old = FileDriver.from_url(url, migrate=False)
    assert old.missing_migrations() == [2, 3] and old.dependents([parent.id]) == []
    old.close()
    upgraded = open_driver(url)
    try:
        assert upgraded.missing_migrations() == []
        assert upgraded.dependents([parent.id]) == sorted(c.id for c in children)
    finally:
        upgraded.close()


def test_redis_layout_3_indexes_the_dependents_already_stored(tmp_path: Path) -> None:
    redis = pytest.importorskip("redis")
    with redis_url(tmp_path) as url:
        driver = open_driver(url)
        try:
            parent = new()
            children = [new(dependencies=(parent.id,)),
                        new(queue_name="b", dependencies=(parent.id,))]
            driver.push([parent, *children])
            prefix = driver.keys.prefix  # type: ignore[attr-defined]
            client = redis.Redis.from_url(url.split("?")[0])
            try:  # as a layout-2 store: no children sets
                client.delete(*client.keys(f"{prefix}:*children:*"))
                client.set(f"{prefix}:schema", 2)
                assert driver.missing_migrations() == [3]
                assert driver.dependents([parent.id]) == []
                assert driver.migrate() == [3]
                assert driver.migrate() == []
            finally:
                client.close()
            assert driver.dependents([parent.id]) == sorted(c.id for c in children)
        finally:
            driver.close()
