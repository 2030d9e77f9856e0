"""One JAX measurement of ``simulate``: ``python -m benchmarks.worker [--devices N] '<job json>'``.

Prints ``RESULT <json>`` as its last line.  Run in a fresh process per job (the
runner does) so that compile time, and the process's peak memory, belong to
that job alone; ``measure`` can also be called in-process (smoke mode).

Method: the first call is timed (compile + one run); the warm time is the
minimum over ``repeats`` further calls, each ending in ``block_until_ready``;
compile time = first − warm.  Peak memory is the process's resident high-water
mark (``ru_maxrss``) after the last call; ``base_rss_mb`` is the same figure just
before the first call (JAX runtime, inputs).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

# Parameters differentiated in the grad benchmark: those a refinement would adjust.
GRAD_PARAMS = ("cell", "misset", "N", "distance", "beam_center", "wavelength", "mosaic_spread",
               "phi0", "fluence", "default_F")


def configure(devices: int) -> None:
    """Process-wide JAX settings; must run before JAX creates its CPU client."""
    import jax

    jax.config.update("jax_enable_x64", True)
    if devices > 1:
        jax.config.update("jax_num_cpu_devices", devices)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(fn, repeats: int):
    import jax

    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return first, times, out


def measure(spec: dict) -> dict:
    """Run the job described by ``spec`` (see ``cases.Job.spec``); returns the result record."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import nanobragg_jax as nb
    from nanobragg_jax import simulate as _  # noqa: F401  (package import side effects)

    mode, repeats = spec["mode"], int(spec["repeats"])
    dtype = np.float32 if spec["dtype"] == "float32" else np.float64
    exp = nb.from_cli_args(spec["flags"])
    setup, params = exp.setup, exp.params.astype(dtype)
    tile = spec.get("extra", {}).get("tile_pixels")
    if tile:  # tile-size sweep: override the automatic choice
        import dataclasses

        setup = dataclasses.replace(setup, tile_pixels=int(tile))
    fmin, fmax, smin, smax = setup.roi
    pixels = (min(fmax, setup.fpixels - 1) - max(fmin, 0) + 1) * (
        min(smax, setup.spixels - 1) - max(smin, 0) + 1)
    K = setup.subpaths_per_pixel
    rec: dict = dict(pixels=int(pixels), subpaths_per_pixel=int(K), devices=len(jax.devices()))
    base = _rss_mb()

    if mode == "forward":
        first, times, img = _timed(lambda: nb.simulate(setup, params), repeats)
        rec["image_sum"] = float(np.asarray(img, np.float64).sum())
        work = 1
    elif mode == "grad":
        sub = {k: getattr(params, k) for k in GRAD_PARAMS}

        def loss(s):
            return jnp.sum(nb.simulate(setup, params.replace(**s)))

        fwd = jax.jit(loss)
        grad = jax.jit(jax.grad(loss))
        # grad branch: first calls (compile + run) timed alone, then the two alternate so that
        # load drifting on a shared machine biases neither side of the ratio of minima
        f_first, f_times, _ = _timed(lambda: fwd(sub), 0)
        first, times, g = _timed(lambda: grad(sub), 0)
        f_times, times = [], []
        for _ in range(max(1, repeats)):
            for fn, acc in ((lambda: fwd(sub), f_times), (lambda: grad(sub), times)):
                t0 = time.perf_counter()
                g_or_f = jax.block_until_ready(fn())
                acc.append(time.perf_counter() - t0)
                if acc is times:
                    g = g_or_f
        rec["forward_warm_s"] = min(f_times)
        rec["forward_compile_s"] = max(0.0, f_first - min(f_times))
        rec["grad_over_forward"] = min(times) / min(f_times)
        rec["grad_params"] = list(GRAD_PARAMS)
        rec["grad_finite"] = bool(all(np.all(np.isfinite(np.asarray(v))) for v in g.values()))
        work = 1
    elif mode == "vmap":
        batch = int(spec.get("extra", {}).get("batch", 16))
        step = np.zeros((batch, 3), dtype)
        step[:, 0] = np.arange(batch) * 0.5  # shots differ by a 0.5° misset about x
        missets = jnp.asarray(np.asarray(params.misset, dtype) + step)
        render = jax.jit(jax.vmap(lambda m: nb.simulate(setup, params.replace(misset=m))))
        single = jax.jit(lambda m: nb.simulate(setup, params.replace(misset=m)))
        s_first, s_times, _ = _timed(lambda: single(missets[0]), repeats)
        first, times, imgs = _timed(lambda: render(missets), repeats)
        rec["batch"] = batch
        rec["single_warm_s"] = min(s_times)
        rec["speedup_vs_sequential"] = batch * min(s_times) / min(times)
        rec["image_sum"] = float(np.asarray(imgs, np.float64).sum())
        work = batch
    elif mode == "panels":
        # panels branch: a grid of panels vs one panel of the same total pixel count
        import dataclasses

        from nanobragg_jax.panels import simulate_panels

        ex = spec.get("extra", {})
        stack = panel_grid(exp, int(ex["grid"][0]), int(ex["grid"][1]), int(ex["n_fast"]), int(ex["n_slow"]),
                           float(ex.get("gap_px", 5)))
        nf, ns = stack.n_fast * int(ex["grid"][0]), stack.n_slow * int(ex["grid"][1])
        one = dataclasses.replace(setup, fpixels=nf, spixels=ns, roi=(0, nf - 1, 0, ns - 1))
        single = jax.jit(lambda p: nb.simulate(one, p))
        stack = stack.astype(dtype)
        panels_fn = jax.jit(lambda p, st: simulate_panels(setup, p, st))
        if ex.get("reference") == "single":
            first, times, img = _timed(lambda: single(params), repeats)
        elif ex.get("reference") == "interleaved":
            # both renderers in one process, calls alternating: the ratio of the minima is
            # robust to the load drifting on a shared machine (peak memory is not meaningful here)
            s_first, s_times, _ = _timed(lambda: single(params), 1)
            first, times, img = _timed(lambda: panels_fn(params, stack), 1)
            for _ in range(max(1, repeats)):
                for fn, acc in ((lambda: single(params), s_times), (lambda: panels_fn(params, stack), times)):
                    t0 = time.perf_counter()
                    jax.block_until_ready(fn())
                    acc.append(time.perf_counter() - t0)
            rec["single_panel_warm_s"] = min(s_times)
            rec["vs_single_panel"] = min(times) / min(s_times)
        else:
            first, times, img = _timed(lambda: panels_fn(params, stack), repeats)
        pixels = int(np.asarray(img).size)
        rec.update(pixels=pixels, panels=1 if ex.get("reference") == "single" else int(stack.n_panels),
                   image_sum=float(np.asarray(img, np.float64).sum()))
        work = 1
    elif mode == "sparse":
        rec.update(_measure_sparse(spec, setup, params, repeats))
        times = [rec["sparse_forward_s"]]
        pixels = rec["sparse_pixels"]
        first = rec["sparse_forward_s"] + rec["sparse_forward_compile_s"]
        work = 1
    else:
        raise ValueError(f"unknown mode {mode!r}")

    warm = min(times)
    rec.update(
        compile_s=max(0.0, first - warm),
        first_call_s=first,
        warm_s=warm,
        times_s=times,
        pixels_per_s=work * pixels / warm,
        subpaths_per_s=work * pixels * K / warm,
        base_rss_mb=base,
        peak_rss_mb=_rss_mb(),
    )
    return rec


def measure_noise(spec: dict) -> dict:
    """Seconds per megapixel of the command's noise image (numpy sampler, or -noise_exact).

    The input is a synthetic n×n diffraction-like image (float32): a background of ~0.5
    photons with a lattice of spots of up to 2,000 photons, so both Poisson regimes (small and
    large means) are exercised.
    """
    import numpy as np

    from nanobragg_jax import noise

    n = int(spec.get("extra", {}).get("n", 1024))
    exact = bool(spec.get("extra", {}).get("exact", False))
    s, f = np.mgrid[0:n, 0:n]
    spots = 2000.0 * np.exp(-(((s % 32) - 16.0) ** 2 + ((f % 32) - 16.0) ** 2) / 4.0)
    image = (0.5 + spots).astype(np.float32)
    times = []
    for i in range(max(1, int(spec["repeats"]))):
        t0 = time.perf_counter()
        if exact:
            noise.noise_image_exact(image, -(i + 1), 40.0)
        else:
            noise.noise_image_numpy(image, -(i + 1), 40.0)
        times.append(time.perf_counter() - t0)
    mpix = n * n / 1e6
    return dict(pixels=n * n, warm_s=min(times), times_s=times, s_per_mpixel=min(times) / mpix,
                sampler="noise_image_exact" if exact else "noise_image_numpy")
def panel_grid(exp, gx: int, gy: int, n_fast: int, n_slow: int, gap_px: float):
    """gx × gy panels of n_fast × n_slow pixels, ``gap_px`` pixels apart, in the plane and with the
    axes of ``exp``'s detector, centred on its direct-beam spot."""
    import numpy as np

    from nanobragg_jax.panels import PanelStack

    info = exp.info
    px = float(exp.params.pixel_size)
    f, s = np.asarray(info["fdet"]), np.asarray(info["sdet"])
    spot = np.asarray(info["beam"]) * info["distance"] * 1e3
    w, h = (n_fast + gap_px) * px, (n_slow + gap_px) * px
    origins = [spot + ((i - gx / 2) * w + gap_px * px / 2) * f + ((j - gy / 2) * h + gap_px * px / 2) * s
               for j in range(gy) for i in range(gx)]
    n = len(origins)
    return PanelStack(origin=np.stack(origins), fast=np.tile(f, (n, 1)), slow=np.tile(s, (n, 1)),
                      n_fast=n_fast, n_slow=n_slow, pixel_size=px)
def _measure_sparse(spec: dict, setup, params, repeats: int) -> dict:
    """Shoebox (sparse) evaluation against the full image, forward and ``jax.grad``.

    The pixel list: shoeboxes (half-size ``half_box``) around the spots
    predicted for the still, cut to ``fraction`` of the detector's pixels (the
    brightest-first order of the predictor: low-resolution spots first).  The
    gradient is of Σ w·photons with respect to the GRAD_PARAMS fields, sparse
    (``simulate_pixels``) and full (``simulate``, the same pixels picked from
    the image).  Compile times are first call − warm time.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    import nanobragg_jax as nb
    from nanobragg_jax.pixels import bucket_size, simulate_pixels
    from nanobragg_jax.spots import predict_spots, shoeboxes

    extra = spec.get("extra", {})
    fraction = float(extra.get("fraction", 0.05))
    half = int(extra.get("half_box", 3))
    boxes = shoeboxes(predict_spots(setup, params), setup, half)
    order = np.argsort(boxes.spot, kind="stable")
    n = min(len(boxes), int(fraction * setup.spixels * setup.fpixels))
    S, F = boxes.slow[order][:n], boxes.fast[order][:n]
    if n == 0:  # no spot on a tiny detector (smoke mode): a block at the centre instead
        n = max(1, int(fraction * setup.spixels * setup.fpixels))
        flat = np.arange(n) + (setup.spixels * setup.fpixels - n) // 2
        S, F = flat // setup.fpixels, flat % setup.fpixels
    w = jnp.asarray(np.random.default_rng(0).normal(size=n), params.wavelength.dtype)
    sub = {k: getattr(params, k) for k in GRAD_PARAMS}

    def full(s):
        return jnp.sum(w * nb.simulate(setup, params.replace(**s))[S, F])

    def sparse(s):
        return jnp.sum(w * simulate_pixels(setup, params.replace(**s), S, F))

    out = dict(sparse_pixels=int(n), sparse_fraction=n / (setup.spixels * setup.fpixels),
               half_box=half, sparse_bucket=int(bucket_size(n)))
    fns = {"full_forward": jax.jit(full), "sparse_forward": jax.jit(sparse),
           "full_grad": jax.jit(jax.grad(full)), "sparse_grad": jax.jit(jax.grad(sparse))}
    # The two sides are timed alternately in this one process (full, sparse, full, …), so
    # that load from other processes hits both alike; the speed-ups are ratios of minima.
    times: dict = {name: [] for name in fns}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        jax.block_until_ready(fn(sub))
        out[f"{name}_compile_s"] = time.perf_counter() - t0  # first call (compile + one run)
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(sub))
            times[name].append(time.perf_counter() - t0)
    for name in fns:
        out[f"{name}_s"] = min(times[name])
        out[f"{name}_compile_s"] = max(0.0, out[f"{name}_compile_s"] - min(times[name]))
    out["forward_speedup"] = out["full_forward_s"] / out["sparse_forward_s"]
    out["grad_speedup"] = out["full_grad_s"] / out["sparse_grad_s"]
    out["load_average"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--noise":
        print("RESULT " + json.dumps(measure_noise(json.loads(argv[1]))), flush=True)
        return 0
    devices = 1
    if argv and argv[0] == "--devices":
        devices = int(argv[1])
        argv = argv[2:]
    configure(devices)
    spec = json.loads(argv[0])
    try:
        rec = measure(spec)
    except Exception as exc:  # reported, not raised: the suite goes on
        rec = dict(error=f"{type(exc).__name__}: {exc}")
    print("RESULT " + json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
