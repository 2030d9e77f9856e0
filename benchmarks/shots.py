"""Shots benchmarks (issue 11): ``python -m benchmarks.shots [--c PATH] [--n 1000] [--out FILE]``.

Three figures, each from child processes so that the device count is fixed before JAX starts:

* throughput — shots per second of ``simulate_shots`` on a 256² detector (one wavelength, random
  orientations), compile time excluded (the first block is timed apart), against the C program
  run once per shot with ``OMP_NUM_THREADS`` threads (a subset of C shots, extrapolated);
* scaling — one child process with 2 CPU devices (``jax_num_cpu_devices``) that renders the
  same batch with ``simulate_shots(devices=1)`` and ``devices=2`` alternately (both compiled
  first) and reports the ratio of the minimum times: both sides see the same machine load;
* cores — the throughput child on one core (pinned with ``sched_setaffinity``, one device)
  against every core (one device, and two): one XLA:CPU device already uses the intra-op
  thread pool, so this, not 1 vs 2 devices, is what a second core buys;
* memory — peak resident memory (``ru_maxrss`` of the child) of ``nanoBragg-shots`` for two run
  lengths (default 500 and 10,000 shots of 128², after a 16-shot run that fills the compilation
  cache so that neither measured run compiles): flat when the stack streams to the file.

Every figure records ``os.getloadavg()`` before and after.  The scaling figure on its own:

    python -m benchmarks.shots --only scaling --out scaling.json

Not a test: speed claims live here and in docs/performance.md, never in assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ("-cell 79 79 38 90 90 90 -N 8 -default_F 100 -lambda 1.3 -distance 100 -pixel 0.1 "
         "-detpixels {n} -oversample 1").split()

_CHILD = r"""
import json, sys, time
import jax
jax.config.update("jax_num_cpu_devices", int(sys.argv[1]))
jax.config.update("jax_enable_x64", True)
import numpy as np
from nanobragg_jax.experiment import from_cli_args
from nanobragg_jax.shots import random_shots, simulate_shots
n, block, flags = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
exp = from_cli_args(flags)
dev = len(jax.local_devices())
times = []
for b in range(0, n, block):
    sh = random_shots(exp.setup, exp.params, block, seed=1, start=b)
    t = time.perf_counter()
    img = simulate_shots(exp.setup, exp.params, sh)  # the default chunk (memory budget)
    img.block_until_ready()
    times.append(time.perf_counter() - t)
print(json.dumps(dict(devices=dev, dtype=str(exp.params.wavelength.dtype), n=len(times) * block, block=block, first_s=times[0],
                      rest_s=sum(times[1:]), shots_per_s=(len(times) - 1) * block / sum(times[1:]),
                      mean=float(np.asarray(img).mean()))))
"""


_SCALING_CHILD = r"""
import json, os, sys, time
import jax
jax.config.update("jax_num_cpu_devices", 2)
jax.config.update("jax_enable_x64", True)
import numpy as np
from nanobragg_jax.experiment import from_cli_args
from nanobragg_jax.shots import random_shots, simulate_shots
block, reps, flags = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
exp = from_cli_args(flags)
sh = random_shots(exp.setup, exp.params, block, seed=1)
def run(dev):
    t = time.perf_counter()
    simulate_shots(exp.setup, exp.params, sh, devices=dev).block_until_ready()  # default chunk
    return time.perf_counter() - t
load0 = os.getloadavg()
compile_s = {d: run(d) for d in (1, 2)}
times = {1: [], 2: []}
for _ in range(reps):
    for d in (1, 2):
        times[d].append(run(d))
print(json.dumps(dict(block=block, reps=reps, compile_s=compile_s, s_1dev=times[1], s_2dev=times[2],
                      min_1dev=min(times[1]), min_2dev=min(times[2]),
                      shots_per_s_1dev=block / min(times[1]), shots_per_s_2dev=block / min(times[2]),
                      scaling_1_to_2=min(times[1]) / min(times[2]), load_before=load0, load_after=os.getloadavg())))
"""


def jax_scaling(n_shots: int, reps: int, det: int, dtype: str = "float64") -> dict:
    """1 vs 2 CPU devices in one process, alternating (see the module docstring)."""
    flags = [f.format(n=det) for f in FLAGS] + ["-dtype", dtype]
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, "-c", _SCALING_CHILD, str(n_shots), str(reps), *flags],
                       env=env, capture_output=True, text=True, timeout=3600)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def jax_throughput(devices: int, n: int, block: int, det: int, dtype: str = "float64",
                   cores: "set[int] | None" = None) -> dict:
    """Shots per second of a child process with ``devices`` CPU devices; ``cores``: the CPUs
    the child may run on (``sched_setaffinity``; None: all)."""
    flags = [f.format(n=det) for f in FLAGS] + ["-dtype", dtype]
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    r = subprocess.run([sys.executable, "-c", _CHILD, str(devices), str(n), str(block), *flags],
                       env=env, capture_output=True, text=True, timeout=3600, preexec_fn=pin)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["cores"] = sorted(cores) if cores else sorted(os.sched_getaffinity(0))
    return out


def core_scaling(n: int, block: int, det: int, dtype: str = "float64") -> dict:
    """Throughput on one core (one device, pinned) against every core (1 and 2 devices).

    One XLA:CPU device already spreads large fused loops over the intra-op thread pool,
    so "1 device vs 2 devices" on a 2-core machine compares two ways of using the same
    two cores.  What more hardware buys is one core against all of them.
    """
    one = jax_throughput(1, n, block, det, dtype, cores={min(os.sched_getaffinity(0))})
    all_1 = jax_throughput(1, n, block, det, dtype)
    all_2 = jax_throughput(2, n, block, det, dtype)
    best = max(all_1["shots_per_s"], all_2["shots_per_s"])
    return dict(one_core=one, all_cores_1dev=all_1, all_cores_2dev=all_2,
                scaling_1_core_to_all=best / one["shots_per_s"],
                scaling_1_core_to_all_2dev=all_2["shots_per_s"] / one["shots_per_s"])


def c_per_shot(binary: str, n: int, threads: int, det: int) -> dict:
    flags = [f.format(n=det) for f in FLAGS]
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            t = time.perf_counter()
            subprocess.run([binary, *flags, "-misset", "random", "-misset_seed", str(i + 1),
                            "-floatfile", "f.bin", "-nonoise", "-nopgm", "-noprogress",
                            "-intfile", "i.img"], cwd=tmp, capture_output=True, check=True,
                           env=dict(os.environ, OMP_NUM_THREADS=str(threads)), timeout=3600)
            times.append(time.perf_counter() - t)
    return dict(threads=threads, shots=n, s_per_shot=sum(times) / n, shots_per_s=n / sum(times))


def peak_memory(n_shots: int, det: int) -> dict:
    flags = [f.format(n=det) for f in FLAGS]
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        code = ("import resource, sys; from nanobragg_jax.dataset import main; rc = main(sys.argv[1:]); "
                "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
        env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", code, "--shots", str(n_shots), "--seed", "1",
                            "--no-progress", "--chunk", "16", "--devices", "1",
                            "-o", os.path.join(tmp, "d.h5"), *flags],
                           env=env, capture_output=True, text=True, timeout=7200)
        if r.returncode:
            raise RuntimeError(r.stderr[-2000:])
        rss = [int(l.split()[1]) for l in r.stdout.splitlines() if l.startswith("MAXRSS")][0]
        size = os.path.getsize(os.path.join(tmp, "d.h5"))
    wall = time.perf_counter() - t
    return dict(shots=n_shots, detector=det, maxrss_MiB=rss / 1024, file_MiB=size / 2**20,
                wall_s=wall, shots_per_s=n_shots / wall, load_before=load0, load_after=os.getloadavg())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.shots", description=__doc__)
    p.add_argument("--c", default=os.environ.get("NANOBRAGG_C", shutil.which("nanoBragg.c") or ""),
                   help="the C program's binary (built outside the repository)")
    p.add_argument("--n", type=int, default=1000, help="JAX shots (256² detector)")
    p.add_argument("--block", type=int, default=50, help="shots per simulate_shots call")
    p.add_argument("--c-shots", type=int, default=10, help="C shots timed (then extrapolated)")
    p.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the C program")
    p.add_argument("--det", type=int, default=256)
    p.add_argument("--dtype", default="float64", help="-dtype of the JAX renders (float64 | float32)")
    p.add_argument("--reps", type=int, default=5, help="scaling: alternating repetitions per side")
    p.add_argument("--mem", default="500,10000", help="run lengths for the memory figure")
    p.add_argument("--mem-det", type=int, default=128)
    p.add_argument("--only", default="throughput,scaling,cores,memory")
    p.add_argument("--out", default="", help="JSON file for the figures")
    a = p.parse_args(argv)
    res: dict = dict(load_before=os.getloadavg())
    only = a.only.split(",")
    if "throughput" in only:
        res["jax_2dev"] = jax_throughput(2, a.n, a.block, a.det, a.dtype)
        print(json.dumps(res["jax_2dev"]), flush=True)
    if "scaling" in only:
        res["scaling"] = jax_scaling(a.block, a.reps, a.det, a.dtype)
        res["scaling_1_to_2"] = res["scaling"]["scaling_1_to_2"]
        print(json.dumps(res["scaling"]), flush=True)
    if "cores" in only:
        res["cores"] = core_scaling(a.n, a.block, a.det, a.dtype)
        print(json.dumps({k: v for k, v in res["cores"].items() if k.startswith("scaling")}), flush=True)
    if "throughput" in only and a.c:
        res["c"] = c_per_shot(a.c, a.c_shots, a.threads, a.det)
        res["speedup_vs_c"] = res["jax_2dev"]["shots_per_s"] / res["c"]["shots_per_s"]
        print(json.dumps(res["c"]), flush=True)
    if "memory" in only:
        # a short run first compiles the renderer into the persistent cache, so that both measured
        # runs load it (a compilation's own peak would otherwise fall on whichever run is first)
        res["memory_warmup"] = peak_memory(16, a.mem_det)
        res["memory"] = []
        for k in a.mem.split(","):
            res["memory"].append(peak_memory(int(k), a.mem_det))
            print(json.dumps(res["memory"][-1]), flush=True)
    res["load_after"] = os.getloadavg()
    text = json.dumps(res, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
