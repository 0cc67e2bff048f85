"""The command line loads a command family's module only when one of its commands runs."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

from taskqueue.cli import COMMAND_MODULES, cli

ROOT = Path(__file__).resolve().parents[2]


def test_the_command_map_names_every_command_of_every_family() -> None:
    families = {module for module in COMMAND_MODULES.values()}
    found = {}
    for family in families:
        module = importlib.import_module(f"taskqueue.cli.{family}")
        found.update({command.name: family for command in module.COMMANDS})
    assert found == COMMAND_MODULES


def test_every_listed_command_resolves() -> None:
    ctx = cli.make_context("taskqueue", ["--help"], resilient_parsing=True)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name


def test_work_loads_neither_rich_nor_the_other_families(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    code = ("import json, sys\n"
            "from taskqueue.cli import cli\n"
            f"cli.main(['--url', {url!r}, 'work', '--stop-when-empty', '--json'],"
            " standalone_mode=False)\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert "taskqueue.cli.work" in modules
    unexpected = {"rich", "prometheus_client", "croniter", "cryptography", "opentelemetry",
                  "taskqueue.cli.dashboard", "taskqueue.cli.observe", "taskqueue.cli.schedule",
                  "taskqueue.cli.keys", "taskqueue.cli.transfer"}
    assert sorted(unexpected & modules) == []
