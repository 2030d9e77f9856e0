"""Runs the jobs of a suite, each in its own process, and collects one JSON record.

Peers:
* the C program: the binary named by ``NB_C_BIN`` (never built here), run with
  ``OMP_NUM_THREADS`` = the thread count.  Its render time is the minimum
  end-to-end time of the job's flags minus the minimum end-to-end time of the
  same flags with ``-roi 0 0 0 0`` (one pixel: same start-up, set-up and file
  writing, no rendering); both are run alternately ``repeats`` times.
* the PyTorch port: when ``nanobrag_torch`` imports (with ``NB_TORCH_SRC``, the
  folder holding the package, prepended to ``PYTHONPATH`` if given).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from .cases import Job

REPO = Path(__file__).resolve().parent.parent
C_OUTPUT_FLAGS = ["-floatfile", "float.bin", "-intfile", "int.img", "-nopgm", "-nonoise", "-noprogress"]


# ---------------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------------


TIME_BIN = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run_process(cmd: list[str], *, env: dict | None = None, cwd: str | None = None,
                timeout: float = 600.0) -> dict:
    """Run ``cmd``; wall time, exit status, peak RSS of that program, output.

    The peak RSS comes from ``/usr/bin/time -f %M`` when present (a child forked
    from this Python process would otherwise inherit its resident pages in
    ``ru_maxrss``), else from ``wait4``.  The wall time includes the wrapper's
    negligible exec.
    """
    out_f = tempfile.TemporaryFile()
    err_f = tempfile.TemporaryFile()
    rss_file = None
    if TIME_BIN:
        fd, rss_file = tempfile.mkstemp(prefix="nb_rss_")
        os.close(fd)
        cmd = [TIME_BIN, "-q", "-f", "%M", "-o", rss_file, *cmd]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out_f, stderr=err_f)
    deadline = t0 + timeout
    status, usage, timed_out = None, None, False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            timed_out = True
            break
        time.sleep(0.002)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out_f.seek(0)
    err_f.seek(0)
    peak = usage.ru_maxrss / 1024.0
    if rss_file:
        try:
            with open(rss_file) as f:
                peak = int(f.read().strip().splitlines()[-1]) / 1024.0
        except (OSError, ValueError, IndexError):
            pass
        os.unlink(rss_file)
    return dict(wall_s=wall, rc=proc.returncode, timed_out=timed_out, peak_rss_mb=peak,
                stdout=out_f.read().decode(errors="replace"),
                stderr=err_f.read().decode(errors="replace"))


def _result_line(text: str) -> dict | None:
    for line in reversed(text.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return None


def _python_env(extra_path: str | None = None) -> dict:
    env = dict(os.environ)
    paths = [str(REPO)] + ([extra_path] if extra_path else [])
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


# ---------------------------------------------------------------------------------------------
# implementations
# ---------------------------------------------------------------------------------------------


def run_jax(job: Job, devices: int, timeout: float, inprocess: bool) -> dict:
    if inprocess:
        from . import worker

        try:
            return worker.measure(job.spec())
        except Exception as exc:
            return dict(error=f"{type(exc).__name__}: {exc}")
    cmd = [sys.executable, "-m", "benchmarks.worker", "--devices", str(devices), json.dumps(job.spec())]
    res = run_process(cmd, env=_python_env(), cwd=str(REPO), timeout=timeout)
    rec = _result_line(res["stdout"])
    if rec is None:
        return dict(error=_failure(res))
    rec.setdefault("peak_rss_mb", res["peak_rss_mb"])
    return rec


def _failure(res: dict) -> str:
    if res["timed_out"]:
        return "timed out"
    tail = (res["stderr"] or res["stdout"]).strip().splitlines()[-3:]
    return f"exit {res['rc']}: " + " | ".join(tail)


def c_binary() -> str | None:
    path = os.environ.get("NB_C_BIN")
    return path if path and os.path.isfile(path) and os.access(path, os.X_OK) else None


def run_c(job: Job, threads: int, timeout: float) -> dict:
    binary = c_binary()
    if binary is None:
        return dict(skipped="NB_C_BIN not set (or not an executable)")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    work = tempfile.mkdtemp(prefix="nb_c_")
    full, roi, peak = [], [], 0.0
    try:
        for _ in range(max(1, job.repeats)):
            r = run_process([binary, *job.flags, *C_OUTPUT_FLAGS], env=env, cwd=work, timeout=timeout)
            if r["rc"] != 0:
                return dict(error=_failure(r))
            full.append(r["wall_s"])
            peak = max(peak, r["peak_rss_mb"])
            if job.mode == "forward":
                r = run_process([binary, *job.flags, *C_OUTPUT_FLAGS, "-roi", "0", "0", "0", "0"],
                                env=env, cwd=work, timeout=timeout)
                if r["rc"] != 0:
                    return dict(error=_failure(r))
                roi.append(r["wall_s"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rec = dict(threads=threads, end_to_end_s=min(full), times_s=full, peak_rss_mb=peak)
    if job.mode == "forward":
        rec.update(roi_1px_s=min(roi), warm_s=max(min(full) - min(roi), 1e-9), method="full - 1px ROI")
    else:
        rec.update(warm_s=min(full), method="end to end")
    return rec


def torch_available() -> tuple[bool, str]:
    src = os.environ.get("NB_TORCH_SRC")
    r = run_process([sys.executable, "-c", "import nanobrag_torch, torch; print(torch.__version__)"],
                    env=_python_env(src), timeout=120)
    if r["rc"] == 0:
        return True, r["stdout"].strip()
    return False, "nanobrag_torch not importable (set NB_TORCH_SRC to the folder holding it)"


def run_torch(job: Job, threads: int, timeout: float) -> dict:
    ok, why = torch_available()
    if not ok:
        return dict(skipped=why)
    spec = job.spec()
    spec["extra"] = dict(spec["extra"], threads=threads)
    env = _python_env(os.environ.get("NB_TORCH_SRC"))
    res = run_process([sys.executable, "-m", "benchmarks._torch_worker", json.dumps(spec)],
                      env=env, cwd=str(REPO), timeout=timeout)
    rec = _result_line(res["stdout"])
    return rec if rec is not None else dict(error=_failure(res))


def run_cli(job: Job, timeout: float) -> dict:
    """The ``nanoBragg`` command end to end: a cold run (empty compilation cache), then warm runs."""
    cache = tempfile.mkdtemp(prefix="nb_cache_")
    work = tempfile.mkdtemp(prefix="nb_cli_")
    env = _python_env()
    env["NANOBRAGG_JAX_CACHE"] = cache
    cmd = [sys.executable, "-m", "nanobragg_jax", *job.flags, *C_OUTPUT_FLAGS]
    if job.dtype == "float32":
        cmd += ["-dtype", "float32"]
    try:
        runs = []
        for _ in range(1 + max(1, job.repeats)):
            r = run_process(cmd, env=env, cwd=work, timeout=timeout)
            if r["rc"] != 0:
                return dict(error=_failure(r))
            runs.append(r)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    warm = [r["wall_s"] for r in runs[1:]]
    return dict(cold_cache_s=runs[0]["wall_s"], warm_s=min(warm), times_s=warm,
                peak_rss_mb=max(r["peak_rss_mb"] for r in runs), method="end to end, persistent cache")


def run_help(job: Job, timeout: float) -> dict:
    """``nanoBragg -h`` end to end (a fresh interpreter each time; must not import JAX)."""
    cmd = [sys.executable, "-m", "nanobragg_jax", "-h"]
    times = []
    for _ in range(max(1, job.repeats)):
        r = run_process(cmd, env=_python_env(), cwd=str(REPO), timeout=timeout)
        if r["rc"] != 0:
            return dict(error=_failure(r))
        times.append(r["wall_s"])
    probe = run_process([sys.executable, "-c", "import sys, nanobragg_jax.cli as c; c.help_text(); "
                         "print('jax' in sys.modules)"], env=_python_env(), cwd=str(REPO), timeout=timeout)
    return dict(warm_s=min(times), times_s=times, imports_jax=probe["stdout"].strip() == "True",
                method="python -m nanobragg_jax -h, end to end")


def run_noise(job: Job, timeout: float) -> dict:
    """The noise image of an n×n float image, per megapixel (fresh process, see worker)."""
    cmd = [sys.executable, "-m", "benchmarks.worker", "--noise", json.dumps(job.spec())]
    res = run_process(cmd, env=_python_env(), cwd=str(REPO), timeout=timeout)
    rec = _result_line(res["stdout"])
    return rec if rec is not None else dict(error=_failure(res))


# ---------------------------------------------------------------------------------------------
# the session
# ---------------------------------------------------------------------------------------------


def machine_info() -> dict:
    info = dict(hostname=socket.gethostname(), platform=platform.platform(),
                machine=platform.machine(), cores=os.cpu_count())
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["memory_gb"] = round(int(f.readline().split()[1]) / 2**20, 1)
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def versions() -> dict:
    out = dict(python=platform.python_version())
    for mod in ("jax", "jaxlib", "numpy", "nanobragg_jax"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:
            out[mod] = None
    try:
        out["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                           capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        out["git_commit"] = None
    binary = c_binary()
    out["c_program"] = binary
    return out


def run_suite(jobs: list[Job], *, devices: int, threads: int, timeout: float, inprocess: bool,
              log=print) -> dict:
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    results = []
    for i, job in enumerate(jobs, 1):
        t0 = time.perf_counter()
        if job.impl == "jax" and job.mode == "cli":
            rec = run_cli(job, timeout)
        elif job.impl == "jax" and job.mode == "help":
            rec = run_help(job, timeout)
        elif job.impl == "jax" and job.mode == "noise":
            rec = run_noise(job, timeout)
        elif job.impl == "jax":
            rec = run_jax(job, devices, timeout, inprocess)
        elif job.impl == "c":
            rec = run_c(job, threads, timeout)
        elif job.impl == "torch":
            rec = run_torch(job, threads, timeout)
        else:
            rec = dict(error=f"unknown implementation {job.impl!r}")
        rec = dict(id=job.id, group=job.group, case=job.case, impl=job.impl, mode=job.mode,
                   dtype=job.dtype, flags=" ".join(job.flags), **rec)
        results.append(rec)
        status = rec.get("error") or rec.get("skipped") or f"warm {rec.get('warm_s', float('nan')):.4g} s"
        log(f"[{i}/{len(jobs)}] {job.id}: {status} ({time.perf_counter() - t0:.1f} s)")
    return dict(schema=1, timestamp=started, machine=machine_info(), versions=versions(),
                settings=dict(devices=devices, threads=threads, inprocess=inprocess),
                results=results)
