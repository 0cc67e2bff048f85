from __future__ import annotations

from pathlib import Path

import pytest

from taskqueue.config import Settings, resolve
from taskqueue.errors import ConfigError


def test_defaults_match_the_original(tmp_path: Path) -> None:
    s = resolve({}, env={}, toml_path=tmp_path / "none.toml")
    assert s.database_url == "sqlite:///storage/queue.db"
    assert (s.worker_memory_limit, s.worker_max_jobs, s.worker_timeout, s.max_workers) == (
        50 * 1024 * 1024, 1000, 3600, 10)


def test_flag_beats_env_beats_toml(tmp_path: Path) -> None:
    toml = tmp_path / "taskqueue.toml"
    toml.write_text('path = "from-toml.db"\nmax_workers = 3\nworker_max_jobs = 7\n')
    env = {"DB_PATH": "from-env.db", "MAX_WORKERS": "4"}
    s = resolve({"path": "from-flag.db"}, env=env, toml_path=toml)
    assert s.path == "from-flag.db" and s.max_workers == 4 and s.worker_max_jobs == 7


def test_url_building_and_redaction(tmp_path: Path) -> None:
    env = {"DB_CONNECTION": "pgsql", "DB_HOST": "db", "DB_PORT": "5433", "DB_DATABASE": "jobs",
           "DB_USERNAME": "app", "DB_PASSWORD": "s3cret"}
    s = resolve({}, env=env, toml_path=tmp_path / "x.toml")
    assert s.database_url == "postgresql://app:s3cret@db:5433/jobs"
    assert "s3cret" not in repr(s)
    assert resolve({}, env={"TASKQUEUE_URL": "redis://h/1"},
                   toml_path=tmp_path / "x.toml").database_url == "redis://h/1"


@pytest.mark.parametrize("env,message", [
    ({"DB_CONNECTION": "oracle"}, "DB_CONNECTION"),
    ({"WORKER_MAX_JOBS": "many"}, "WORKER_MAX_JOBS must be a number"),
    ({"MAX_WORKERS": "0"}, "MAX_WORKERS must be positive"),
])
def test_bad_settings_name_the_problem(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve({}, env=env, toml_path=tmp_path / "x.toml")


def test_unknown_toml_key_gets_a_hint(tmp_path: Path) -> None:
    toml = tmp_path / "taskqueue.toml"
    toml.write_text("max_worker = 3\n")
    with pytest.raises(ConfigError, match="did you mean 'max_workers'"):
        resolve({}, env={}, toml_path=toml)


def test_settings_repr_hides_secrets() -> None:
    s = Settings(encryption_key="base64:AAAA", url="postgresql://u:pw@h/db")
    assert "AAAA" not in repr(s) and "pw" not in repr(s)
