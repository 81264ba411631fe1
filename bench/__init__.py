"""motwatch's benchmark: ``python -m bench.run [--quick]`` (``make bench``, ``make bench-quick``).

Every figure is measured in one run, on one machine and one real Kafka broker,
and reported with its ratio to the baselines measured in that same run. See
``bench/README.md``.
"""
