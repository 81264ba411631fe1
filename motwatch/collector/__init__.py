"""The HTTP collector (``motwatch collect``): vendor requests in, touchpoints and dead letters to Kafka.

Segment (and the browser tracker), Snowplow, GA4 Measurement Protocol and
CloudEvents requests are converted by :mod:`motwatch.adapters`; each
accepted touchpoint is produced to the touchpoints topic keyed by its
journey, each rejected vendor event to the dead-letter topic with its
reason, and a request is answered 2xx only once Kafka acknowledged all of
it (:mod:`motwatch.collector.endpoints` lists the endpoints and answers).
A separate process from the worker, with its own ``/metrics`` and ``/health``.
"""
