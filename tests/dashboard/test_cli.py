"""``taskqueue dashboard`` and ``dashboard:hash-password``: refusals exit 2 with a message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from taskqueue.cli.dashboard import COMMANDS, is_loopback
from taskqueue.dashboard import load_users
from taskqueue.dashboard.auth import verify_password


def make_group(url: str) -> click.Group:
    @click.group()
    @click.pass_context
    def root(ctx: click.Context) -> None:
        ctx.obj = {"url": url}

    for command in COMMANDS:
        root.add_command(command)
    return root


def invoke(url: str, *args: str, **kwargs: Any) -> Any:
    return CliRunner().invoke(make_group(url), list(args), **kwargs)


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.9.9.9")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    assert not is_loopback("example.com")


@pytest.mark.parametrize("args,message", [
    (["--host", "0.0.0.0"], "without authentication"),
    (["--host", "10.1.2.3", "--port", "8080"], "give --users or --token"),
    (["--port", "0"], "--port"),
    (["--port", "http"], "--port"),
    (["--token", "short"], "at least 16"),
    (["--users", "/no/such/users.toml"], "does not exist"),
    (["--max-decode", "0"], "--max-decode"),
    (["--root-path", "taskqueue"], "not a path prefix"),
    (["--bogus"], "No such option"),
])
def test_bad_arguments_exit_2(sqlite_url: str, args: list[str], message: str) -> None:
    result = invoke(sqlite_url, "dashboard", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_bad_users_file_exits_2(sqlite_url: str, tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    users.write_text('[users.bob]\npassword = "plain-text"\n')
    result = invoke(sqlite_url, "dashboard", "--users", str(users), "--host", "0.0.0.0")
    assert result.exit_code == 2 and "hash" in result.output


def test_hash_password_prints_a_users_table(tmp_path: Path) -> None:
    result = invoke("sqlite://", "dashboard:hash-password", "bob", "--role", "admin",
                    input="s3cret-pass\ns3cret-pass\n")
    assert result.exit_code == 0, result.output
    table = result.output[result.output.index("[users.bob]"):]
    path = tmp_path / "users.toml"
    path.write_text(table)
    bob = load_users(path)["bob"]
    assert bob.role == "admin" and bob.payloads
    assert verify_password("s3cret-pass", bob.password_hash)
    short = invoke("sqlite://", "dashboard:hash-password", "bob", "--password", "x")
    assert short.exit_code == 2 and "at least 8" in short.output
