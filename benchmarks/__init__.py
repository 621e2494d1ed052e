"""The benchmarks, beside the package and not installed with it (as SQLAlchemy's examples/performance).

Run from the repository root, with canvas-progress installed:
`python -m benchmarks replay --database-url URL` (replay and the worker
against a naive consumer and the write path's own limit) and
`python -m benchmarks bi --database-url URL` (dashboard views and report
jobs at scale). Each runs only on an empty scratch database (scratch.py).
"""
