"""Schema versions: a store can be opened without migrating it and says what it lacks."""

from __future__ import annotations

from taskqueue.drivers import Driver, open_driver


def test_a_migrated_store_misses_nothing(driver: Driver) -> None:
    assert driver.missing_migrations() == []


def test_opening_without_migrating_leaves_the_schema_alone(store_url: str) -> None:
    fresh = open_driver(store_url, migrate=False)
    try:
        missing = fresh.missing_migrations()
        assert missing and missing == sorted(missing)
        assert fresh.missing_migrations() == missing, "looking wrote a version"
        assert fresh.migrate() == missing
        assert fresh.missing_migrations() == []
    finally:
        fresh.close()
