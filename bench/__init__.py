"""Load generator and servers for docs/performance.md (GitHub issue 7): `python -m bench.run`."""
