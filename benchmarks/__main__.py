"""``python -m benchmarks``: run the benchmark suite (issues #10 and 17), write docs/benchmarks.md.

    python -m benchmarks setup                      # venvs for the competitors (once)
    python -m benchmarks run [--quick] [--only taskqueue,taskqueue-api,ceiling]
                             [--backend redis,sqlite] [--mode standard,mixed]
                             [--jobs N] [--repeat K] [--out docs/benchmarks.md]
    python -m benchmarks report                     # re-render from benchmarks/results/
    python -m benchmarks profile [--backend sqlite,redis] [--jobs 10000]
    python -m benchmarks scale [--jobs 200000] [--backend sqlite,postgres,redis] [--no-docs]
    python -m benchmarks scale-stats [--jobs 1000000] [--before-src DIR] [--no-docs]
    python -m benchmarks dashboard [--jobs 1000000] [--backend postgres,sqlite] [--docs]
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from benchmarks import orchestrate

    p = argparse.ArgumentParser(prog="python -m benchmarks",
                                description="taskqueue benchmark suite (issues #10 and 17); "
                                "see benchmarks/README.md")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="measure, merge into the results file, write the report")
    r.add_argument("--quick", action="store_true",
                   help="small N, one repeat, fewer extras (about 3 minutes)")
    r.add_argument("--only", help="comma-separated libraries: " + ",".join(
                       n for n in orchestrate.LIB_BY_NAME if n not in orchestrate.BEFORE)
                   + " (the others keep their stored figures)")
    r.add_argument("--backend", help="comma-separated: " + ",".join(orchestrate.BACKENDS))
    r.add_argument("--jobs", type=int, help="N jobs for the drain (default 10000)")
    r.add_argument("--repeat", type=int, help="runs per measurement; medians are reported "
                   "(default 3)")
    r.add_argument("--out", default=None,
                   help="the report (default docs/benchmarks.md, plots in docs/images/; with "
                   "--quick, benchmarks/results/quick.md)")
    r.add_argument("--results", default=None,
                   help="merged medians (JSON), also the input of `report` (default "
                   "benchmarks/results/results.json; with --quick, quick.json beside it so "
                   "that a quick run never replaces full-run figures)")
    r.add_argument("--no-plots", action="store_true")
    r.add_argument("--no-extras", action="store_true",
                   help="skip taskqueue's payload sweep, 4-process scaling run and the CLI "
                   "without recycling")
    r.add_argument("--mode", default=None,
                   help="comma-separated measurements to keep: standard, mixed, "
                   "max-jobs:1000000, scale:4, payload:SIZE (default: all)")
    r.add_argument("--no-mixed", action="store_true",
                   help="skip the mixed-duration benchmark (taskqueue's CLI, two workers)")
    r.add_argument("--taskqueue-src", default=None,
                   help="measure the taskqueue package in this directory (e.g. a worktree of "
                   "an older commit's src/) instead of this tree's src/")
    r.add_argument("--before-src", default=None,
                   help="also measure taskqueue's rows on the taskqueue package in this "
                   "directory (the src/ of an older commit's worktree), each right after the "
                   "same row on the current code: a before/after table from one run")
    rep = sub.add_parser("report", help="write the report from the stored results")
    rep.add_argument("--out", default="docs/benchmarks.md")
    rep.add_argument("--results", default=str(orchestrate.RESULTS))
    rep.add_argument("--no-plots", action="store_true")
    sub.add_parser("setup", help="create benchmarks/.venvs with the competitors")
    prof = sub.add_parser("profile", help="py-spy/pyinstrument a taskqueue worker draining N "
                          "no-op jobs")
    prof.add_argument("--backend", default="sqlite,redis")
    prof.add_argument("--jobs", type=int, default=10_000)
    prof.add_argument("--tool", choices=("py-spy", "pyinstrument"), default="py-spy")
    prof.add_argument("--out-dir", default="benchmarks/results/profiles")
    sc = sub.add_parser("scale", help="a store of N finished jobs: size, server CPU per job, "
                        "prune under load (issue 20; benchmarks/scale.py)")
    sc.add_argument("--jobs", type=int, default=200_000,
                    help="finished jobs per backend (figures per million are extrapolated)")
    sc.add_argument("--backend", default="sqlite,postgres,redis")
    sc.add_argument("--rate", type=float, default=200.0,
                    help="jobs/s of the stream the worker drains during the prune")
    sc.add_argument("--baseline", type=float, default=10.0,
                    help="seconds of the stream measured without a prune")
    sc.add_argument("--results-dir", default=None,
                    help="where scale.json and scale.md go (default benchmarks/results)")
    sc.add_argument("--no-docs", dest="write_docs", action="store_false",
                    help="only write benchmarks/results/scale.{json,md}")
    ss = sub.add_parser("scale-stats", help="QueueManager.stats() on an empty store and at N "
                        "pending / completed jobs (issue 20 item 5; benchmarks/scale_stats.py)")
    ss.add_argument("--jobs", type=int, default=1_000_000)
    ss.add_argument("--backend", default="sqlite,postgres,mysql,redis")
    ss.add_argument("--before-src", default=None,
                    help="also time stats() with the taskqueue package in this directory (the "
                    "src/ of an older commit's worktree) against the same stores")
    ss.add_argument("--mysql", default="mysql://root@127.0.0.1:3306",
                    help="the MySQL/MariaDB server to make a database on")
    ss.add_argument("--results-dir", default=None,
                    help="where scale_stats.json and .md go (default benchmarks/results)")
    ss.add_argument("--no-docs", dest="write_docs", action="store_false",
                    help="only write benchmarks/results/scale_stats.{json,md}")
    db = sub.add_parser("dashboard", help="the dashboard API's list/count/graph requests and "
                        "bulk actions over a store of N jobs (issue 18; benchmarks/dashboard.py)")
    db.add_argument("--jobs", type=int, default=1_000_000)
    db.add_argument("--backend", default="postgres,sqlite")
    db.add_argument("--repeat", type=int, default=5, help="timed calls per request")
    db.add_argument("--results-dir", default=None,
                    help="where dashboard.json and dashboard.md go (default benchmarks/results)")
    db.add_argument("--docs", action="store_true",
                    help="also put the table into docs/dashboard.md")
    args = p.parse_args(argv)
    if args.command == "run":
        if args.out is None:
            args.out = "benchmarks/results/quick.md" if args.quick else "docs/benchmarks.md"
        if args.results is None:
            args.results = str(orchestrate.RESULTS.with_name("quick.json") if args.quick
                               else orchestrate.RESULTS)
        return orchestrate.run(args)
    if args.command == "setup":
        return orchestrate.setup(args)
    if args.command == "report":
        from pathlib import Path

        from benchmarks import report

        report.publish(orchestrate.load_results(Path(args.results)), Path(args.out),
                       plots=not args.no_plots)
        return 0
    if args.command == "scale":
        from benchmarks import scale

        return scale.main(args)
    if args.command == "scale-stats":
        from benchmarks import scale_stats

        return scale_stats.main(args)
    if args.command == "dashboard":
        from benchmarks import dashboard

        return dashboard.main(args)
    if args.command == "profile":
        from benchmarks import profile

        return profile.main(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
