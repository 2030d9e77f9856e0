"""Benchmark suite for nanobragg-jax: ``python -m benchmarks [--smoke]``.

Measures warm and compile time, throughput (pixels/s, sub-paths/s) and peak
memory of ``simulate`` (float32 and float64, forward, ``jax.grad``, a ``vmap``
batch, the command line end to end) on the canonical and heavy cases and on
scaling series, and runs the peers in the same session when available: the C
program (``NB_C_BIN``) and the PyTorch port (``nanobrag_torch`` importable, or
its source folder in ``NB_TORCH_SRC``).  Writes ``results.json`` and
``results.md``; see docs/performance.md.
"""
