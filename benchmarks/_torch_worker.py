"""Times the PyTorch port's render: ``python -m benchmarks._torch_worker '<json>'``.

Runs the port's own command line (``nanobrag_torch.__main__.main``) on the job's
flags with its ``Simulator.run`` wrapped so that it renders ``repeats`` times in
the same process: the first run includes the port's ``torch.compile``, the warm
time is the minimum of the others.  Prints ``RESULT <json>``.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time


def main() -> int:
    spec = json.loads(sys.argv[1])
    threads = int(spec.get("extra", {}).get("threads", os.cpu_count() or 1))
    repeats = max(2, int(spec["repeats"]))
    import torch

    torch.set_num_threads(threads)
    from nanobrag_torch import __main__ as port_main
    from nanobrag_torch.simulator import Simulator

    original = Simulator.run
    times: list[float] = []
    sums: list[float] = []

    def timed_run(self, *args, **kwargs):
        out = None
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = original(self, *args, **kwargs)
            times.append(time.perf_counter() - t0)
        sums.append(float(out.double().sum()) if hasattr(out, "double") else float("nan"))
        return out

    Simulator.run = timed_run
    os.chdir(tempfile.mkdtemp(prefix="nb_torch_"))
    sys.argv = ["nanoBragg", *spec["flags"], "-dtype", spec["dtype"], "-floatfile", "float.bin"]
    rec: dict = {}
    try:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            port_main.main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            rec["error"] = f"port exited with {exc.code}"
    except Exception as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"
    if times:
        warm = min(times[1:]) if len(times) > 1 else times[0]
        rec.update(first_call_s=times[0], compile_s=max(0.0, times[0] - warm), warm_s=warm,
                   times_s=times[1:], image_sum=sums[-1] if sums else None, threads=threads,
                   torch_version=torch.__version__)
    elif "error" not in rec:
        rec["error"] = "the port did not render"
    rec["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("RESULT " + json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
