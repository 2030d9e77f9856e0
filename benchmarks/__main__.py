"""``python -m benchmarks [--smoke] [--out DIR] [...]``: run the suite, write JSON and Markdown."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import cases, report, runner


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes, one repeat, JAX jobs in this process (CI; no timing claims)")
    p.add_argument("--out", default="benchmark-results", help="folder for results.json / results.md")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per job (full mode)")
    p.add_argument("--devices", type=int, default=os.cpu_count() or 1,
                   help="JAX CPU devices (jax_num_cpu_devices) the tiles are spread over")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="OpenMP threads of the C program, torch threads of the port")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per job")
    p.add_argument("--only", default="", help="comma-separated groups to run (main, detector_size, "
                   "subpaths, tiles, grad, vmap, cli, cli_help, noise, memory, panels, sparse)")
    p.add_argument("--impls", default="", help="comma-separated implementations to run (jax, c, torch)")
    p.add_argument("--no-peers", action="store_true", help="skip the C program")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch port")
    p.add_argument("--torch", action="store_true", help="include the port in smoke mode")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.smoke:
        jobs = cases.smoke_suite(peers=not args.no_peers, torch=args.torch)
    else:
        jobs = cases.full_suite(repeats=args.repeats, peers=not args.no_peers, torch=not args.no_torch)
    if args.only:
        groups = set(args.only.split(","))
        jobs = [j for j in jobs if j.group in groups]
    if args.impls:
        impls = set(args.impls.split(","))
        jobs = [j for j in jobs if j.impl in impls]
    if args.smoke:
        # In-process JAX jobs share one runtime: configure it once, before first use.
        from . import worker

        worker.configure(args.devices)
    session = runner.run_suite(jobs, devices=args.devices, threads=args.threads,
                               timeout=args.timeout, inprocess=args.smoke,
                               log=lambda s: print(s, flush=True))
    session["mode"] = "smoke" if args.smoke else "full"
    report.add_ratios(session)
    report.evaluate_targets(session)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(session, indent=1))
    (out / "results.md").write_text(report.markdown(session))
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    failed = [r["id"] for r in session["results"] if "error" in r]
    if failed:
        print("failed jobs: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
