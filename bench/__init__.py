"""Benchmarks of the archive, run from the repository root as modules.

    python -m bench.run --preset tiny     # ours vs Orthanc, one command
    python -m bench.ingest | query | retrieve | report

The measuring client and the data generator are peerbench's, kept unchanged in bench/peerbench/
and run as scripts (see bench/scripts.py).
"""
