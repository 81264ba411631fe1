"""Fault tests: real workers crashed, rebalanced and stopped mid-stream, judged by ``motwatch detect``."""
