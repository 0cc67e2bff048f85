"""A private three-master Redis Cluster for tests: three ``redis-server --cluster-enabled yes``
on spare loopback ports in a temporary directory, joined by ``redis-cli --cluster create``.

Started at most once per test process (``pytest -n`` workers each start their own, on their own
ports) and stopped by pid when the process exits. Every step is bounded in time."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
MASTERS = 3
START_TIMEOUT = 30.0


def _spare_ports(count: int) -> list[int]:
    """Ports free now, and whose cluster bus port (+10000) is free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def _die_with_parent() -> None:
    """In the child before exec: on Linux, be killed when the test process dies, even by
    SIGKILL (atexit does not run then); elsewhere nothing."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class RedisCluster:
    """The servers of one local cluster; ``url`` names one node with the cluster scheme."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        if REDIS_SERVER is None or REDIS_CLI is None:
            raise RuntimeError("redis-server and redis-cli are needed for a local cluster")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ports = _spare_ports(MASTERS)
        deadline = self._launch()
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            timeout=max(1.0, deadline - time.monotonic()))
        self._wait_ok(deadline)

    def restart(self) -> None:
        """Start the stopped nodes again, on their ports and with their cluster configuration
        (the same cluster, empty: no persistence), and wait until it serves again."""
        self._wait_ok(self._launch())

    def _launch(self) -> float:
        """Start a node on each port and wait for it to answer; the deadline of the start."""
        assert REDIS_SERVER is not None
        for port in self.ports:
            node = self.dir / str(port)
            node.mkdir(exist_ok=True)
            self.procs.append(subprocess.Popen(
                [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                 "--cluster-enabled", "yes", "--cluster-config-file", str(node / "nodes.conf"),
                 "--cluster-node-timeout", "5000", "--dir", str(node), "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--logfile", str(node / "log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent))
        deadline = time.monotonic() + START_TIMEOUT
        for port in self.ports:
            self._wait(lambda p=port: self._cli(p, "ping") == "PONG", deadline, f"node {port}")
        return deadline

    def _wait_ok(self, deadline: float) -> None:
        for port in self.ports:
            self._wait(lambda p=port: "cluster_state:ok" in self._cli(p, "cluster", "info"),
                       deadline, f"cluster state on {port}")

    def _cli(self, port: int, *args: str) -> str:
        assert REDIS_CLI is not None
        done = subprocess.run([REDIS_CLI, "-p", str(port), *args], capture_output=True,
                              text=True, timeout=5)
        return done.stdout.strip()

    def _wait(self, ready: object, deadline: float, what: str) -> None:
        while not ready():  # type: ignore[operator]
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a cluster node exited (code {proc.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis cluster: {what} not ready in {START_TIMEOUT:g}s")
            time.sleep(0.05)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
        for proc in self.procs:
            proc.wait(timeout=10)
        self.procs = []


_started: RedisCluster | None = None


def shared() -> RedisCluster:
    """This process's cluster, started on first use in a temporary directory; stopped and
    removed when the process exits."""
    global _started
    if _started is None:
        cluster = RedisCluster(Path(tempfile.mkdtemp(prefix="tq-redis-cluster-")))
        try:
            cluster.start()
        except BaseException:
            cluster.stop()
            shutil.rmtree(cluster.dir, ignore_errors=True)
            raise
        _started = cluster
        atexit.register(_stop_shared)
    return _started


def _stop_shared() -> None:
    global _started
    if _started is not None:
        _started.stop()
        shutil.rmtree(_started.dir, ignore_errors=True)
        _started = None
