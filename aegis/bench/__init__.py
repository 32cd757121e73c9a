"""The benchmark suite: Aegis's observation overhead against bare runs and strace.

``python -m aegis.bench`` (or ``aegis-bench``) generates the workloads in a
temporary directory, runs each one bare, under ``aegis wrap`` per observer and
under ``strace``, all interleaved in the same run, and prints medians and ratios,
plus completeness against strace, start-up time, ledger rates, compiled decisions
against cedarpy and peak memory. ``--json`` for comparing versions, ``--quick``
for CI-sized runs.
"""
