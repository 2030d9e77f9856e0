"""``nanoBragg-shots``: a serial-crystallography dataset as one resumable HDF5 stack.

usage:
  nanoBragg-shots --shots N --seed S -o OUT.h5 [--spectrum mono|sase|FILE] [options] NANOBRAGG_FLAGS…

Our options start with ``--``; every other argument is a nanoBragg flag (the
detector, crystal, structure factors, beam — exactly as the ``nanoBragg``
command reads them).  Shot i gets a rotation uniform on SO(3), a spectrum and a
fluence that depend only on (seed, i) (``shots.random_shots``), so a dataset is
reproducible shot by shot.

File layout (HDF5, written with h5py):

  /entry                         NXentry; attrs: program, version, n_shots, seed,
                                 run (JSON of every option and flag: the fingerprint)
  /entry/data/data               (n_shots, spixels, fpixels) float32, photons/pixel,
                                 chunked one shot per chunk
  /entry/shots/done              (n_shots,) uint8: 1 once shot i and its truth are written
  /entry/shots/orientation_U     (n_shots, 3, 3) rotation U (lab frame)
  /entry/shots/reciprocal_matrix (n_shots, 3, 3) Å⁻¹, columns a*, b*, c* (= U·B)
  /entry/shots/wavelengths       (n_shots, C) Å
  /entry/shots/weights           (n_shots, C) relative weights (image = Σ w·image(λ)/Σ w)
  /entry/shots/fluence           (n_shots,) photons/m²

Resuming: rerunning the same command on an existing file keeps the shots whose
``done`` flag is set and renders the rest; the flags are flushed after every
block of shots, so a run killed at any point loses at most the block in flight
(the file of a run killed *while* HDF5 writes can be damaged: HDF5 is not
journaled).  A file made by a different command is refused (``--overwrite``
starts afresh).  Blocks always have the same shape (the last one is padded), so
a resumed file is bit-identical to an uninterrupted one.

Several hosts: with ``--coordinator HOST:PORT --num-processes P --process-id I``
each process calls ``jax.distributed.initialize``, renders the contiguous block
of shots ``shots.process_shot_indices`` gives it on its local devices, and
writes ``OUT`` with ``.partIofP`` before the suffix — the same layout, with
``done`` set for its own shots only (the union of the parts is the dataset).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Optional, Sequence

import numpy as np

PROGRAM = "nanoBragg-shots"

# option: (number of values, default, help)
OPTIONS: dict[str, tuple[int, object, str]] = {
    "--shots": (1, None, "number of shots (required)"),
    "--seed": (1, 0, "dataset seed: shot i depends only on (seed, i)"),
    "-o": (1, None, "output HDF5 file (required)"),
    "--spectrum": (1, "mono", "mono | sase | FILE (two columns: wavelength Å or energy eV, weight)"),
    "--channels": (1, 32, "SASE: wavelength channels per shot"),
    "--bandwidth": (1, 2e-3, "SASE: relative FWHM of the envelope"),
    "--modes": (1, 20, "SASE: spikes per pulse"),
    "--mode-width": (1, 1e-4, "SASE: relative FWHM of one spike"),
    "--jitter": (1, 0.0, "SASE: relative r.m.s. jitter of the centre wavelength"),
    "--fluence-cv": (1, 0.0, "relative r.m.s. of a log-normal shot-to-shot fluence jitter"),
    "--chunk": (1, 0, "shots per device step (0 = from the memory budget)"),
    "--block": (1, 0, "shots per write (flush) block (0 = chunk × devices)"),
    "--devices": (1, 0, "local devices sharing the shots (0 = all)"),
    "--coordinator": (1, None, "jax.distributed coordinator HOST:PORT (several hosts)"),
    "--num-processes": (1, 1, "jax.distributed: number of processes"),
    "--process-id": (1, 0, "jax.distributed: this process"),
    "--overwrite": (0, False, "start afresh even if OUT exists"),
    "--progress": (0, None, "progress bar even when stderr is not a terminal"),
    "--no-progress": (0, None, "no progress bar"),
    "--help": (0, False, "this help"),
}


class UsageError(ValueError):
    """A problem with the command line of nanoBragg-shots."""


def usage() -> str:
    lines = [f"usage: {PROGRAM} --shots N -o OUT.h5 [options] NANOBRAGG_FLAGS...", "", "options:"]
    for k, (n, d, h) in OPTIONS.items():
        lines.append(f"  {k:<16} {h}" + (f" (default {d})" if d not in (None, False) else ""))
    lines.append("every other argument is a nanoBragg flag (see nanoBragg -h)")
    return "\n".join(lines)


def split_args(argv: Sequence[str]) -> tuple[dict, list[str]]:
    """Our options (dict, converted) and the remaining nanoBragg flags (in order)."""
    opts = {k.lstrip("-").replace("-", "_"): d for k, (n, d, h) in OPTIONS.items()}
    rest: list[str] = []
    i = 0
    argv = list(argv)
    while i < len(argv):
        a = argv[i]
        if a in OPTIONS:
            n, d, _ = OPTIONS[a]
            key = a.lstrip("-").replace("-", "_")
            if n == 0:
                opts[key] = True
                if a == "--progress":
                    opts["progress"] = True
                if a == "--no-progress":
                    opts["progress"] = False
                i += 1
                continue
            if i + 1 >= len(argv):
                raise UsageError(f"{a} needs a value")
            v = argv[i + 1]
            try:
                opts[key] = v if isinstance(d, str) or d is None else type(d)(v)
            except ValueError:
                raise UsageError(f"{a}: {v!r} is not a {type(d).__name__}") from None
            i += 2
            continue
        if a.startswith("--"):
            raise UsageError(f"unknown option {a} (see {PROGRAM} --help)")
        rest.append(a)
        i += 1
    opts.pop("no_progress", None)
    if opts.get("help"):
        return opts, rest
    if opts["shots"] is None:
        raise UsageError("--shots N is required")
    opts["shots"] = int(opts["shots"])
    if opts["shots"] <= 0:
        raise UsageError("--shots must be > 0")
    if not opts["o"]:
        raise UsageError("-o OUT.h5 is required")
    if opts["num_processes"] < 1 or not 0 <= opts["process_id"] < opts["num_processes"]:
        raise UsageError("--process-id must be in [0, --num-processes)")
    return opts, rest


def part_path(path: str, process_id: int, num_processes: int) -> str:
    """The file process ``process_id`` writes (``path`` itself for one process)."""
    if num_processes == 1:
        return path
    stem, ext = os.path.splitext(path)
    return f"{stem}.part{process_id}of{num_processes}{ext or '.h5'}"


def _spectrum_arg(opts: dict):
    from . import spectra

    sp = opts["spectrum"]
    if sp in ("mono", "sase"):
        return sp
    try:
        return spectra.read_spectrum(sp)
    except (OSError, ValueError) as e:
        raise UsageError(f"--spectrum {sp}: {e}") from None


def _fingerprint(opts: dict, flags: list[str]) -> str:
    keep = {k: opts[k] for k in ("shots", "seed", "spectrum", "channels", "bandwidth", "modes",
                                  "mode_width", "jitter", "fluence_cv")}
    if opts["spectrum"] not in ("mono", "sase"):
        with open(opts["spectrum"], "rb") as fh:
            keep["spectrum_file"] = fh.read().decode("utf-8", "replace")
    return json.dumps(dict(options=keep, flags=list(flags)), sort_keys=True)


def _open(path: str, opts: dict, flags: list[str], shape: tuple[int, int], n_channels: int):
    import h5py

    from . import __version__

    n = opts["shots"]
    fp = _fingerprint(opts, flags)
    if os.path.exists(path) and not opts["overwrite"]:
        f = h5py.File(path, "r+")
        if f["/entry"].attrs.get("run") != fp:
            f.close()
            raise UsageError(f"{path} was written by a different command (use --overwrite to replace it)")
        return f
    f = h5py.File(path, "w")
    entry = f.create_group("entry")
    entry.attrs.update(NX_class="NXentry", program=PROGRAM, version=__version__, n_shots=n,
                       seed=opts["seed"], run=fp)
    data = entry.create_group("data")
    data.attrs["NX_class"] = "NXdata"
    data.attrs["signal"] = "data"
    d = data.create_dataset("data", (n,) + shape, np.float32, chunks=(1,) + shape, fillvalue=0.0)
    d.attrs["units"] = "photons"
    g = entry.create_group("shots")
    g.create_dataset("done", (n,), np.uint8, fillvalue=0)
    g.create_dataset("orientation_U", (n, 3, 3), np.float64)
    g.create_dataset("reciprocal_matrix", (n, 3, 3), np.float64).attrs["units"] = "1/angstrom"
    g.create_dataset("wavelengths", (n, n_channels), np.float64).attrs["units"] = "angstrom"
    g.create_dataset("weights", (n, n_channels), np.float64)
    g.create_dataset("fluence", (n,), np.float64).attrs["units"] = "photons/m^2"
    f.flush()
    return f


def run(argv: Sequence[str]) -> int:
    """The command: returns the exit status."""
    opts, flags = split_args(argv)
    if opts.get("help"):
        print(usage())
        return 0
    spectrum = _spectrum_arg(opts)
    if opts["coordinator"]:
        import jax

        jax.distributed.initialize(coordinator_address=opts["coordinator"],
                                   num_processes=opts["num_processes"],
                                   process_id=opts["process_id"], initialization_timeout=300)
    import jax

    from .experiment import from_cli_args
    from .simulate import enable_compilation_cache

    # a resumed (or repeated) run loads the compiled renderer instead of compiling it again
    enable_compilation_cache(min_compile_time_secs=1.0)
    from .shots import choose_chunk, process_shot_indices, random_shots, shot_setup, simulate_shots

    exp = from_cli_args(flags)
    if exp.params is None:
        print(usage())
        return 0
    if exp.options.get("dtype", "float64") == "float64":
        jax.config.update("jax_enable_x64", True)
    setup, params = exp.setup, exp.params
    n = opts["shots"]
    n_channels = (1 if spectrum == "mono" else opts["channels"] if spectrum == "sase"
                  else spectrum.wavelengths.size)
    n_dev = opts["devices"] or len(jax.local_devices())
    n_dev = max(1, min(n_dev, len(jax.local_devices())))
    mine = process_shot_indices(n, opts["process_id"], opts["num_processes"])
    chunk = opts["chunk"] or choose_chunk(shot_setup(setup, n_channels), max(1, len(mine) // n_dev),
                                          256 << 20)[0]
    block = opts["block"] or chunk * n_dev
    path = part_path(opts["o"], opts["process_id"], opts["num_processes"])
    f = _open(path, opts, flags, (setup.spixels, setup.fpixels), n_channels)
    try:
        done = f["/entry/shots/done"][...]
        todo = [int(i) for i in mine if not done[i]]
        bar = None
        show = opts["progress"] if opts["progress"] is not None else sys.stderr.isatty()
        if show:
            from tqdm import tqdm

            bar = tqdm(total=len(mine), initial=len(mine) - len(todo), unit="shot", desc=PROGRAM)
        g, d = f["/entry/shots"], f["/entry/data/data"]
        for b in range(0, len(todo), block):
            idx = todo[b:b + block]
            # every block has the same shape (the last one repeats its last shot) so that
            # one compiled program renders every shot: a resumed file is bit-identical
            full = idx + [idx[-1]] * (block - len(idx))
            sh = random_shots(setup, params, len(full), opts["seed"], indices=full,
                              spectrum=spectrum, n_channels=opts["channels"],
                              bandwidth=opts["bandwidth"], n_modes=opts["modes"],
                              mode_width=opts["mode_width"], jitter=opts["jitter"],
                              fluence_cv=opts["fluence_cv"])
            imgs = np.asarray(simulate_shots(setup, params, sh, devices=n_dev, chunk=chunk))
            k = len(idx)
            sel = np.asarray(idx)
            for j, i in enumerate(idx):  # contiguous or not, one shot per chunk
                d[i] = imgs[j].astype(np.float32)
            g["orientation_U"][sel] = sh.U[:k]
            g["reciprocal_matrix"][sel] = sh.recip_matrix[:k]
            g["wavelengths"][sel] = sh.wavelengths[:k]
            g["weights"][sel] = sh.weights[:k]
            g["fluence"][sel] = sh.fluence[:k]
            f.flush()
            g["done"][sel] = 1
            f.flush()
            if bar is not None:
                bar.update(k)
            else:
                print(f"{PROGRAM}: {b + k}/{len(todo)} shots written to {path}", flush=True)
        if bar is not None:
            bar.close()
    finally:
        f.close()
        if opts["coordinator"]:
            jax.distributed.shutdown()
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point ``nanoBragg-shots``."""
    from .flags import FlagError
    from .io.errors import InputFileError

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return run(argv)
    except (UsageError, FlagError, InputFileError) as e:
        print(f"{PROGRAM}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
