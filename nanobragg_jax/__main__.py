"""``python -m nanobragg_jax`` runs the nanoBragg command line."""

from .cli import main

raise SystemExit(main())
