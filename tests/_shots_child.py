"""Child process for tests/test_shots.py (devices must be chosen before JAX starts).

usage:
  python _shots_child.py devices OUT.npz        2 CPU devices: sharded and unsharded batches
  python _shots_child.py host PID PORT OUT.npz  one of 2 jax.distributed processes: its share
  python _shots_child.py single OUT.npz         the whole batch in one process
"""

from __future__ import annotations

import sys

import jax

mode = sys.argv[1]
if mode == "devices":
    jax.config.update("jax_num_cpu_devices", 2)
jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from nanobragg_jax.experiment import from_cli_args  # noqa: E402
from nanobragg_jax.shots import process_shot_indices, random_shots, simulate_shots  # noqa: E402

ARGS = ("-cell 50 60 70 90 95 90 -N 4 -default_F 100 -lambda 1.0 -detpixels 16 -pixel 1.5 "
        "-distance 50 -oversample 1").split()
N_SHOTS = 6
SEED = 11


def batch(indices=None):
    exp = from_cli_args(ARGS)
    if indices is None:
        indices = np.arange(N_SHOTS)
    start = int(indices[0]) if len(indices) else 0
    sh = random_shots(exp.setup, exp.params, len(indices), SEED, start=start, spectrum="sase",
                      n_channels=3)
    return exp, sh


if mode == "devices":
    assert len(jax.local_devices()) == 2, jax.local_devices()
    exp, sh = batch()
    sharded = simulate_shots(exp.setup, exp.params, sh, devices=2, chunk=2)
    n_shards = len(sharded.sharding.device_set)
    single = simulate_shots(exp.setup, exp.params, sh, devices=1)
    np.savez(sys.argv[2], sharded=np.asarray(sharded), single=np.asarray(single), n_shards=n_shards)
elif mode == "host":
    pid, port = int(sys.argv[2]), int(sys.argv[3])
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                               process_id=pid, initialization_timeout=60)
    idx = process_shot_indices(N_SHOTS)
    exp, sh = batch(idx)
    imgs = np.asarray(simulate_shots(exp.setup, exp.params, sh))
    np.savez(sys.argv[4], indices=idx, images=imgs, process_count=jax.process_count())
    jax.distributed.shutdown()
elif mode == "single":
    exp, sh = batch()
    np.savez(sys.argv[2], images=np.asarray(simulate_shots(exp.setup, exp.params, sh)))
else:
    raise SystemExit(f"unknown mode {mode}")
