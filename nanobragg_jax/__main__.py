"""``python -m nanobragg_jax`` runs the nanoBragg command line."""

from ._entry import main

raise SystemExit(main())
