"""Kafka plumbing: reaching a broker, topics, reading, writing, the recording format, a local broker.

Imports the core (to key and time recorded events) and aiokafka; nothing of
Faust, the commands, ``streams`` or ``agents``.
"""
