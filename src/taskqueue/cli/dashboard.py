"""``taskqueue dashboard`` (serve the web dashboard) and ``dashboard:hash-password``."""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any

import click

from taskqueue.errors import ConfigError

MIN_TOKEN = 16


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _token(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and len(value) < MIN_TOKEN:
        raise click.BadParameter(f"use at least {MIN_TOKEN} characters (e.g. from "
                                 "`python -c 'import secrets; print(secrets.token_urlsafe())'`)")
    return value


def build_settings(users_file: Path | None, token: str | None, read_only_token: str | None,
                   secret_key: str | None, alerts_file: Path | None,
                   **options: Any) -> Any:
    """DashboardSettings from the command line (exit 2 on a bad users or alerts file)."""
    from taskqueue.dashboard.auth import load_users
    from taskqueue.dashboard.settings import DashboardSettings
    from taskqueue.observability.alerts import find_config, load_config

    try:
        users = load_users(users_file) if users_file else {}
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--users") from None
    alerts, source, error = None, None, None
    path = find_config(alerts_file)
    if path is not None:
        source = str(path)
        try:
            alerts = load_config(path, os.environ)
        except ConfigError as exc:
            if alerts_file is not None:
                raise click.BadParameter(str(exc), param_hint="--alerts") from None
            error = str(exc)
    return DashboardSettings(users=users, users_file=users_file, token=token,
                             read_only_token=read_only_token,
                             secret_key=secret_key or secrets.token_urlsafe(32),
                             alerts=alerts, alerts_source=source, alerts_error=error,
                             **options)


def _root_path(value: str) -> str:
    value = value.rstrip("/")
    if value and (not value.startswith("/") or "//" in value or "?" in value):
        raise click.BadParameter(f"{value!r} is not a path prefix like /taskqueue",
                                 param_hint="--root-path")
    return value


@click.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs --users or --token.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--allowed-hosts", envvar="TASKQUEUE_DASHBOARD_ALLOWED_HOSTS", default="",
              help="Host names to answer to besides loopback, comma-separated (a proxy's "
                   "name; *.example.com for subdomains). Other Host headers get 400.")
@click.option("--users", "users_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML file of [users.NAME] with password hashes and roles.")
@click.option("--token", envvar="TASKQUEUE_DASHBOARD_TOKEN", callback=_token,
              help="Admin access token (Authorization: Bearer, or typed at login).")
@click.option("--read-only-token", envvar="TASKQUEUE_DASHBOARD_READ_ONLY_TOKEN",
              callback=_token, help="Read-only access token.")
@click.option("--secret-key", envvar="TASKQUEUE_DASHBOARD_SECRET",
              help="Signs session cookies; set it to keep sessions across restarts and "
                   "instances [random].")
@click.option("--alerts", "alerts_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Alert rules to show [alerts.toml or [alerts] in taskqueue.toml].")
@click.option("--app", "apps", multiple=True,
              help="Module(s) defining your tasks (for positional argument names).")
@click.option("--max-decode", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Most payloads decoded by one args.NAME:VALUE search request.")
@click.option("--secure-cookies", is_flag=True,
              help="Send the session cookie over HTTPS only (behind a TLS proxy).")
@click.option("--session-hours", type=click.FloatRange(min=0.1), default=8.0,
              show_default=True, help="A login lasts this long.")
@click.option("--refresh", type=click.FloatRange(min=0.2, max=60), default=2.0,
              show_default=True, help="Seconds between two live updates of the overview.")
@click.option("--root-path", default="", callback=lambda c, p, v: _root_path(v),
              help="The path prefix a reverse proxy serves the dashboard under (e.g. "
                   "/taskqueue), when it strips that prefix before forwarding.")
@click.pass_context
def dashboard(ctx: click.Context, host: str, port: int, allowed_hosts: str,
              users_file: Path | None,
              token: str | None, read_only_token: str | None, secret_key: str | None,
              alerts_file: Path | None, apps: tuple[str, ...], max_decode: int,
              secure_cookies: bool, session_hours: float, refresh: float,
              root_path: str) -> None:
    """Serve the web dashboard (live overview, jobs, queues, workers, schedules, alerts)."""
    if not (users_file or token or read_only_token) and not is_loopback(host):
        raise click.UsageError(f"refusing to serve the dashboard on {host} without "
                               "authentication: give --users or --token (or listen on "
                               "127.0.0.1)")
    if users_file is not None and not users_file.is_file():
        raise click.BadParameter(f"{users_file} does not exist", param_hint="--users")
    try:
        import uvicorn

        from taskqueue.dashboard import create_app
    except ImportError as exc:
        raise click.UsageError(f"the dashboard needs its extra: pip install "
                               f"'taskqueue-py[dashboard]' ({exc})") from None
    from taskqueue.cli.output import cli_settings, import_apps
    from taskqueue.cli.ports import check_port
    from taskqueue.manager import QueueManager

    check_port(host, port, "the dashboard")
    import_apps(apps)
    settings = build_settings(users_file, token, read_only_token, secret_key, alerts_file,
                              max_decode=max_decode, https_only=secure_cookies,
                              session_max_age=int(session_hours * 3600),
                              live_interval=refresh,
                              allowed_hosts=tuple(h.strip() for h in allowed_hosts.split(",")
                                                  if h.strip()))
    manager = QueueManager.with_replica(cli_settings(ctx))
    where = f"http://{host if ':' not in host else f'[{host}]'}:{port}{root_path}/"
    mode = "authentication on" if settings.auth_enabled else "no authentication (loopback)"
    click.echo(f"taskqueue dashboard on {where} ({manager.driver.name}, {mode})", err=True)
    try:
        uvicorn.run(create_app(manager, settings), host=host, port=port, log_level="warning",
                    timeout_graceful_shutdown=3, proxy_headers=False, root_path=root_path)
    finally:
        manager.close()


@click.command("dashboard:hash-password")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "read-only"]), default="read-only",
              show_default=True)
@click.option("--payloads/--no-payloads", default=None,
              help="May the user read job arguments and results [admins yes, others no].")
@click.password_option("--password", prompt="Password", help="Prompted for when not given.")
def hash_password_cmd(username: str, role: str, payloads: bool | None, password: str) -> None:
    """Print a [users.USERNAME] table for the dashboard's --users file."""
    from taskqueue.dashboard.auth import hash_password

    if len(password) < 8:
        raise click.BadParameter("use at least 8 characters", param_hint="--password")
    if payloads is None:
        payloads = role == "admin"
    click.echo(f'[users.{_toml_key(username)}]\npassword = "{hash_password(password)}"\n'
               f'role = "{role}"\npayloads = {str(payloads).lower()}')


def _toml_key(name: str) -> str:
    bare = name.replace("-", "").replace("_", "").isalnum() and name.isascii()
    return name if bare else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


COMMANDS = [dashboard, hash_password_cmd]
