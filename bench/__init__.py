"""Benchmarks of grpc-naming (not tests): every figure is a ratio against an anchor measured in
the same run, with rounds interleaved (A B A B ...) so that the machine's noise hits both alike.

``python -m bench`` runs them all (``--quick`` in under a minute), writes ``bench/results/latest.json``
and regenerates the table in ``docs/benchmarks.md``.
"""
