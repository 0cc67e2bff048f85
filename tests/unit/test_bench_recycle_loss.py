"""The benchmark's recycle loss (``benchmarks/harness.py``): what recycles cost the drain against
its own steady rate, not the gap at the hand-over (which holds an ordinary batch boundary)."""

from __future__ import annotations

from benchmarks.harness import lost_per_recycle


def drain(jobs: int, per_job: float, costs: dict[int, float]) -> list[tuple[int, float]]:
    """Progress points every 64 jobs of a drain at ``per_job`` seconds a job, each recycle
    (first job of the replacement -> seconds lost) delaying every later job."""
    return [(n, (n - 1) * per_job + sum(c for b, c in costs.items() if n >= b))
            for n in [*range(1, jobs, 64), jobs]]


def test_the_loss_is_the_delay_recycles_add_to_the_drain() -> None:
    costs = {1001: 0.004, 2001: 0.006, 3001: 0.005}
    lost = lost_per_recycle(drain(4000, 1e-4, costs), list(costs))
    assert lost is not None and abs(lost - 0.005) < 1e-9


def test_no_recycle_or_no_steady_stretch_gives_no_figure() -> None:
    assert lost_per_recycle(drain(4000, 1e-4, {}), []) is None
    assert lost_per_recycle([(1, 0.0), (65, 0.01)], [30]) is None
