"""The benchmark cases: flag sets (C program syntax) and the suites built from them."""

from __future__ import annotations

from dataclasses import dataclass, field

CANONICAL = ("-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 "
             "-detpixels {n}")
HEAVY = ("-cell 70 80 90 75 85 95 -default_F 100 -lambda 1.0 -N 5 -mosaic 0.5 -mosaic_dom {dom} "
         "-phi 1 -osc 1 -phisteps 4 -dispersion 1 -dispsteps 3 -oversample 2 -distance 100 "
         "-detpixels {n}")


# A typical still for shoebox refinement: λ 1 Å, a 40×40×55 Å cell at a general orientation.
STILL = ("-cell 40 40 55 90 90 90 -default_F 100 -lambda 1 -N 10 -distance 80 -pixel 0.1 "
         "-misset 10 20 30 -oversample 1 -detpixels {n}")


def still(n: int = 1024) -> list[str]:
    return STILL.format(n=n).split()


def canonical(n: int = 1024) -> list[str]:
    return CANONICAL.format(n=n).split()


def heavy(n: int = 256, domains: int = 10) -> list[str]:
    return HEAVY.format(n=n, dom=domains).split()


@dataclass
class Job:
    """One measurement: an implementation running one case in one mode."""

    group: str  # table the row belongs to
    case: str  # case name, e.g. "canonical_1024"
    flags: list[str]
    impl: str = "jax"  # "jax", "c", "torch"
    mode: str = "forward"  # "forward", "grad", "vmap", "cli"
    dtype: str = "float64"
    repeats: int = 5
    extra: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.group}/{self.case}/{self.impl}/{self.mode}/{self.dtype}"

    def spec(self) -> dict:
        return dict(group=self.group, case=self.case, flags=self.flags, impl=self.impl,
                    mode=self.mode, dtype=self.dtype, repeats=self.repeats, extra=self.extra)


DTYPES = ("float32", "float64")


def full_suite(repeats: int = 5, peers: bool = True, torch: bool = True) -> list[Job]:
    """Everything in docs/performance.md (tens of minutes with the peers)."""
    jobs: list[Job] = []
    main = {"canonical_1024": canonical(1024), "heavy_256": heavy(256)}
    for name, flags in main.items():
        for dt in DTYPES:
            jobs.append(Job("main", name, flags, "jax", "forward", dt, repeats))
        if peers:
            jobs.append(Job("main", name, flags, "c", "forward", "float64", repeats))
        if torch:
            jobs.append(Job("main", name, flags, "torch", "forward", "float32", 3))
    for n in (256, 512, 1024, 2048):
        for dt in DTYPES:
            jobs.append(Job("detector_size", f"canonical_{n}", canonical(n), "jax", "forward", dt, repeats))
        if peers:
            jobs.append(Job("detector_size", f"canonical_{n}", canonical(n), "c", "forward", "float64",
                            repeats))
    spp = {"K1": canonical(256)}
    spp.update({f"K{48 * d}": heavy(256, d) for d in (1, 5, 10, 40)})
    for name, flags in spp.items():
        for dt in DTYPES:
            jobs.append(Job("subpaths", f"{name}_256", flags, "jax", "forward", dt, repeats))
        if peers:
            jobs.append(Job("subpaths", f"{name}_256", flags, "c", "forward", "float64",
                            max(1, min(repeats, 3))))
    for name, flags in main.items():
        for dt in DTYPES:
            jobs.append(Job("grad", name, flags, "jax", "grad", dt, repeats))
    for name, flags, tiles in (("canonical_1024", canonical(1024), (16384, 65536, 262144, 1048576)),
                               ("heavy_256", heavy(256), (4096, 16384, 65536))):
        for tile in tiles:
            jobs.append(Job("tiles", f"{name}_tile{tile}", flags, "jax", "forward", "float32", repeats,
                            {"tile_pixels": tile}))
    for dt in DTYPES:
        jobs.append(Job("vmap", "heavy_256_x16", heavy(256), "jax", "vmap", dt, 3, {"batch": 16}))
    for dt in DTYPES:  # shoeboxes (5 % of the pixels) vs the full image
        jobs.append(Job("sparse", "still_1024_5pct", still(1024), "jax", "sparse", dt, repeats,
                        {"fraction": 0.05, "half_box": 5}))
    jobs += cli_jobs(repeats=3, peers=peers)
    for dt in DTYPES:
        jobs.append(Job("memory", "heavy_2048", heavy(2048), "jax", "forward", dt, 1))
    jobs += panels_suite(repeats)
    return jobs


# panels branch: a CSPAD-like detector of 8×8 panels of 194 (fast) × 185 (slow) pixels with
# 5-pixel gaps, against one panel of the same total pixel count (1552 × 1480)
PANELS = "-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 -pixel 0.11 -oversample 1"


def panels_suite(repeats: int = 3, grid: int = 8, n_fast: int = 194, n_slow: int = 185) -> list[Job]:
    """``panels`` group: the multi-panel renderer vs one panel of the same pixel count (each alone
    in its process for time and peak memory, and both alternating in one process for a time
    ratio that load drift on a shared machine does not bias)."""
    flags = PANELS.split() + ["-detpixels_f", str(n_fast), "-detpixels_s", str(n_slow)]
    jobs = []
    for dt in DTYPES:
        for ref in ("stack", "single", "interleaved"):
            extra = dict(grid=[grid, grid], n_fast=n_fast, n_slow=n_slow, gap_px=5, reference=ref)
            jobs.append(Job("panels", f"{grid}x{grid}_{n_fast}x{n_slow}_{ref}", flags, "jax", "panels", dt,
                            repeats, extra))
    return jobs


def cli_jobs(repeats: int = 3, peers: bool = True, small: bool = False) -> list[Job]:
    """The command's own costs: ``-h``, end to end cold/warm next to the C program, noise."""
    jobs = [Job("cli_help", "help", ["-h"], "jax", "help", "-", max(3, repeats))]
    cases = {"canonical_32": canonical(32)} if small else {"canonical_1024": canonical(1024),
                                                           "heavy_256": heavy(256)}
    for name, flags in cases.items():
        for dt in DTYPES if not small else ("float32",):
            jobs.append(Job("cli", name, flags, "jax", "cli", dt, repeats))
        if peers:
            jobs.append(Job("cli", name, flags, "c", "cli", "float64", repeats))
    n = 64 if small else 1024
    jobs.append(Job("noise", f"noise_{n}", [], "jax", "noise", "float32", repeats, {"n": n}))
    jobs.append(Job("noise", f"noise_exact_{n // 4}", [], "jax", "noise", "float32", 1,
                    {"n": n // 4, "exact": True}))
    return jobs


def smoke_suite(peers: bool = True, torch: bool = False) -> list[Job]:
    """Tiny sizes, one repeat: exercises every code path of the suite in seconds."""
    jobs = [
        Job("main", "canonical_64", canonical(64), "jax", "forward", "float32", 1),
        Job("main", "canonical_64", canonical(64), "jax", "forward", "float64", 1),
        Job("main", "heavy_32", heavy(32), "jax", "forward", "float32", 1),
        Job("grad", "heavy_32", heavy(32), "jax", "grad", "float32", 1),
        Job("vmap", "heavy_32_x2", heavy(32), "jax", "vmap", "float32", 1, {"batch": 2}),
        Job("cli", "canonical_32", canonical(32), "jax", "cli", "float32", 1),
        Job("cli_help", "help", ["-h"], "jax", "help", "-", 1),
        Job("noise", "noise_64", [], "jax", "noise", "float32", 1, {"n": 64}),
        Job("sparse", "still_64_5pct", still(64), "jax", "sparse", "float64", 1, {"fraction": 0.05}),
    ]
    jobs += [j for j in panels_suite(1, grid=2, n_fast=16, n_slow=12) if j.dtype == "float32"]
    if peers:
        jobs.append(Job("main", "canonical_64", canonical(64), "c", "forward", "float64", 1))
    if torch:
        jobs.append(Job("main", "canonical_64", canonical(64), "torch", "forward", "float32", 2))
    return jobs
