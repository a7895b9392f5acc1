"""Host benchmarks of issue 6: run as modules (``python -m bench.core``, ``python -m bench.latency``)."""
