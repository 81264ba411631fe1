"""The domain: touchpoints, journeys, event time, detectors and moments, as plain deterministic Python.

Nothing here imports Faust, aiokafka, prometheus_client, the Kafka package,
the commands, ``streams`` or ``agents`` (``make lint`` checks it): the worker
and ``motwatch detect`` drive the same code.
"""
