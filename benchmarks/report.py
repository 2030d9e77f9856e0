"""Ratios, targets and the Markdown tables of a benchmark session."""

from __future__ import annotations

import math


def _find(results: list[dict], **match) -> dict | None:
    for r in results:
        if all(r.get(k) == v for k, v in match.items()) and "warm_s" in r:
            return r
    return None


def add_ratios(session: dict) -> None:
    """Throughput ratios (peer time / our time; > 1 means faster than the peer)."""
    results = session["results"]
    for r in results:
        if r["impl"] != "jax" or "warm_s" not in r:
            continue
        if r["mode"] == "forward":
            c = _find(results, group=r["group"], case=r["case"], impl="c", mode="forward")
            t = _find(results, group=r["group"], case=r["case"], impl="torch", mode="forward",
                      dtype="float32")
            if c:
                r["vs_c"] = c["warm_s"] / r["warm_s"]
            if t:
                r["vs_torch_f32"] = t["warm_s"] / r["warm_s"]
        elif r["mode"] == "cli":
            c = _find(results, group=r["group"], case=r["case"], impl="c", mode="cli")
            if c:
                r["vs_c"] = c["warm_s"] / r["warm_s"]
        elif r["mode"] == "panels" and r["case"].endswith("_stack"):
            # panels branch: multi-panel warm time over one panel of the same pixel count
            one = _find(results, group=r["group"], case=r["case"][:-len("_stack")] + "_single",
                        mode="panels", dtype=r["dtype"])
            if one:
                r["vs_single_panel"] = r["warm_s"] / one["warm_s"]
                r["rss_vs_single_panel"] = r["peak_rss_mb"] / one["peak_rss_mb"]


def evaluate_targets(session: dict) -> list[dict]:
    """The issue's targets, for whichever measurements the session holds."""
    results = session["results"]
    out = []

    def target(name, value, threshold, op):
        if value is None:
            return
        met = value >= threshold if op == ">=" else value <= threshold if op == "<=" else value < threshold
        out.append(dict(target=name, value=value, op=op, threshold=threshold, met=bool(met)))

    def get(key, **m):
        r = _find(results, **m)
        return r.get(key) if r else None

    for dt in ("float32", "float64"):
        target(f"64 panels {dt}: warm / one panel of the same pixels (interleaved)",
               get("vs_single_panel", group="panels", case="8x8_194x185_interleaved", dtype=dt), 1.3, "<=")
        target(f"64 panels {dt}: peak memory / one panel of the same pixels",
               get("rss_vs_single_panel", group="panels", case="8x8_194x185_stack", dtype=dt), 1.3, "<=")
    target("canonical float32 vs C (×)", get("vs_c", group="main", case="canonical_1024", impl="jax",
                                            dtype="float32"), 3.0, ">=")
    target("canonical float64 vs C (×)", get("vs_c", group="main", case="canonical_1024", impl="jax",
                                            dtype="float64"), 1.5, ">=")
    target("heavy float64 vs C (×)", get("vs_c", group="main", case="heavy_256", impl="jax",
                                        dtype="float64"), 1.0, ">=")
    for case in ("canonical_1024", "heavy_256"):
        target(f"{case} float32 vs port float32 (×)",
               get("vs_torch_f32", group="main", case=case, impl="jax", dtype="float32"), 3.0, ">=")
        for dt in ("float32", "float64"):
            target(f"{case} {dt} grad / forward", get("grad_over_forward", group="grad", case=case,
                                                       mode="grad", dtype=dt), 3.0, "<=")
    for dt in ("float32", "float64"):
        target(f"heavy_2048 {dt} peak memory (MB)", get("peak_rss_mb", group="memory",
                                                         case="heavy_2048", dtype=dt), 4096.0, "<")
    for dt in ("float32", "float64"):
        for key, label in (("forward_speedup", "forward"), ("grad_speedup", "grad")):
            target(f"shoeboxes at 5 % of still_1024, {dt}: {label} speed-up vs full image (×)",
                   get(key, group="sparse", case="still_1024_5pct", dtype=dt), 10.0, ">=")
    target("CLI canonical_1024 end to end, float64, warm cache (s)",
           get("warm_s", group="cli", case="canonical_1024", impl="jax", dtype="float64"), 1.5, "<=")
    target("CLI canonical_1024 end to end, float64, cold cache (s)",
           get("cold_cache_s", group="cli", case="canonical_1024", impl="jax", dtype="float64"), 4.0, "<=")
    target("CLI heavy_256 end to end, float64, warm cache, vs C (×)",
           get("vs_c", group="cli", case="heavy_256", impl="jax", dtype="float64"), 10.0, ">=")
    target("nanoBragg -h (s)", get("warm_s", group="cli_help", case="help"), 0.3, "<=")
    target("noise image (s per megapixel)", get("s_per_mpixel", group="noise", case="noise_1024"), 0.05, "<=")
    session["targets"] = out
    return out


def _f(x, digits=3, scale=1.0):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    x = x * scale
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def _note(r):
    return r.get("error") or r.get("skipped") or ""


def markdown(session: dict) -> str:
    res = session["results"]
    m, v = session["machine"], session["versions"]
    s = session["settings"]
    lines = [
        f"# nanobragg-jax benchmark — {session['timestamp']}",
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores')} cores, {m.get('memory_gb', '?')} GB "
        f"({m.get('platform')}); load average at start {m.get('load_average', '?')}.",
        f"Versions: jax {v.get('jax')}, jaxlib {v.get('jaxlib')}, numpy {v.get('numpy')}, "
        f"nanobragg_jax {v.get('nanobragg_jax')} (git {v.get('git_commit')}), python {v.get('python')}.",
        f"Settings: JAX CPU devices {s['devices']}; C/port threads {s['threads']}.  "
        "Times are the minimum over repeats; ratios are peer time / our time (× faster).",
        "",
    ]

    def table(title, header, rows):
        if not rows:
            return
        lines.extend([f"## {title}", "", "| " + " | ".join(header) + " |",
                      "|" + "|".join("---" for _ in header) + "|"])
        lines.extend("| " + " | ".join(str(c) for c in row) + " |" for row in rows)
        lines.append("")

    def fwd_rows(group):
        rows = []
        for r in res:
            if r["group"] != group or r["mode"] != "forward":
                continue
            impl = {"jax": "nanobragg-jax", "c": "C (OpenMP)", "torch": "PyTorch port"}[r["impl"]]
            dt = r["dtype"] if r["impl"] != "c" else "float64"
            px = r.get("pixels")
            K = r.get("subpaths_per_pixel")
            if r["impl"] != "jax" and "warm_s" in r:
                jr = _find(res, group=group, case=r["case"], impl="jax")
                if jr:
                    px, K = jr.get("pixels"), jr.get("subpaths_per_pixel")
            mpx = px / r["warm_s"] / 1e6 if px and "warm_s" in r else None
            msp = px * K / r["warm_s"] / 1e6 if px and K and "warm_s" in r else None
            rows.append([r["case"], impl, dt, _f(r.get("warm_s"), 4), _f(r.get("compile_s"), 3),
                         _f(mpx), _f(msp), _f(r.get("peak_rss_mb"), 4), _f(r.get("vs_c")),
                         _f(r.get("vs_torch_f32")), _note(r)])
        return rows

    hdr = ["case", "implementation", "dtype", "warm (s)", "compile (s)", "Mpixel/s", "Msub-path/s",
           "peak RSS (MB)", "× C", "× port f32", "note"]
    table("Canonical and heavy cases", hdr, fwd_rows("main"))
    table("Scaling in detector size (canonical flags)", hdr, fwd_rows("detector_size"))
    table("Scaling in sub-paths per pixel (256², K = sub-paths per pixel)", hdr, fwd_rows("subpaths"))
    table("Memory: heavy flags on a 2048² detector", hdr, fwd_rows("memory"))
    table("Tile size (pixels per tile; the automatic choice is 262144 for canonical, 16384 for heavy)",
          hdr, fwd_rows("tiles"))
    table("jax.grad of the image sum", ["case", "dtype", "forward (s)", "grad (s)", "grad / forward",
                                        "grad compile (s)", "peak RSS (MB)", "finite", "note"],
          [[r["case"], r["dtype"], _f(r.get("forward_warm_s"), 4), _f(r.get("warm_s"), 4),
            _f(r.get("grad_over_forward")), _f(r.get("compile_s")), _f(r.get("peak_rss_mb"), 4),
            r.get("grad_finite", "–"), _note(r)] for r in res if r["mode"] == "grad"])
    table("Batch of shots with vmap", ["case", "dtype", "batch", "batch (s)", "per shot (s)",
                                       "single shot (s)", "speed-up vs sequential", "peak RSS (MB)",
                                       "note"],
          [[r["case"], r["dtype"], r.get("batch", "–"), _f(r.get("warm_s"), 4),
            _f(r["warm_s"] / r["batch"], 4) if "warm_s" in r and r.get("batch") else "–",
            _f(r.get("single_warm_s"), 4), _f(r.get("speedup_vs_sequential")),
            _f(r.get("peak_rss_mb"), 4), _note(r)] for r in res if r["mode"] == "vmap"])
    table("Shoeboxes (simulate_pixels) vs the full image (simulate): Σ w·photons over the same pixels",
          ["case", "dtype", "pixels (fraction)", "full fwd (s)", "sparse fwd (s)", "fwd speed-up",
           "full grad (s)", "sparse grad (s)", "grad speed-up", "first sparse grad compile (s)",
           "first full grad compile (s)", "note"],
          [[r["case"], r["dtype"],
            f"{r.get('sparse_pixels', '–')} ({_f(r.get('sparse_fraction'), 2, 100)} %)",
            _f(r.get("full_forward_s"), 4), _f(r.get("sparse_forward_s"), 4),
            _f(r.get("forward_speedup")), _f(r.get("full_grad_s"), 4), _f(r.get("sparse_grad_s"), 4),
            _f(r.get("grad_speedup")), _f(r.get("sparse_grad_compile_s")),
            _f(r.get("full_grad_compile_s")), _note(r)] for r in res if r["mode"] == "sparse"])
    table("Command line, end to end (writes float and int images)",
          ["case", "implementation", "dtype", "cold cache (s)", "warm (s)", "peak RSS (MB)", "× C", "note"],
          [[r["case"], {"jax": "nanoBragg (nanobragg-jax)", "c": "C nanoBragg"}[r["impl"]], r["dtype"],
            _f(r.get("cold_cache_s"), 3), _f(r.get("warm_s"), 3), _f(r.get("peak_rss_mb"), 4),
            _f(r.get("vs_c")), _note(r)] for r in res if r["mode"] == "cli"])
    table("Command start-up and noise",
          ["case", "what", "time (s)", "s per megapixel", "note"],
          [[r["case"], r.get("method") or r.get("sampler", "–"), _f(r.get("warm_s"), 3),
            _f(r.get("s_per_mpixel"), 3), ("imports JAX" if r.get("imports_jax") else "") + _note(r)]
           for r in res if r["mode"] in ("help", "noise")])
    table("Multi-panel detector vs one panel of the same pixel count",
          ["case", "dtype", "panels", "pixels", "warm (s)", "one panel, same run (s)", "compile (s)",
           "peak RSS (MB)", "warm / one panel", "RSS / one panel", "note"],
          [[r["case"], r["dtype"], r.get("panels", "–"), r.get("pixels", "–"), _f(r.get("warm_s"), 4),
            _f(r.get("single_panel_warm_s"), 4), _f(r.get("compile_s"), 3), _f(r.get("peak_rss_mb"), 4),
            _f(r.get("vs_single_panel")), _f(r.get("rss_vs_single_panel")), _note(r)]
           for r in res if r["mode"] == "panels"])
    targets = session.get("targets") or []
    table("Targets", ["target", "value", "required", "met"],
          [[t["target"], _f(t["value"], 4), f"{t['op']} {t['threshold']:g}", "yes" if t["met"] else "**no**"]
           for t in targets])
    return "\n".join(lines)
