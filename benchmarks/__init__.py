"""The benchmark suite of issue #10 (``python -m benchmarks``). Never part of the test suite's
pass/fail: ``tests/benchmarks/test_smoke.py`` only checks that the command works on a tiny N."""
