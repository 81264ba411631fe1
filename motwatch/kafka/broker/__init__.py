"""Real Kafka brokers for development and tests, from Maven Central jars.

``ensure_jars()`` fetches the broker once into a per-user cache;
``KafkaBroker`` runs it as a child JVM; ``KafkaCluster`` runs N of them as
one KRaft cluster (``motwatch broker --nodes N``); ``run_foreground()`` is
``motwatch broker``. ``SecureKafkaBroker`` adds TLS and SCRAM listeners and
ACLs (``motwatch broker --secure``). Problems a person must fix raise
:class:`BrokerError` with a one-line message.
"""

from .acls import Acl
from .cluster import ClusterNode, KafkaCluster
from .jars import (
    KAFKA_VERSION,
    LOG4J_VERSION,
    BrokerError,
    cache_dir,
    check_java,
    check_tools,
    ensure_jars,
    lib_dir,
)
from .server import KafkaBroker, run_foreground


def __getattr__(name: str) -> object:
    """``SecureKafkaBroker`` on first use: its certificates need ``cryptography``, a CLI start not."""
    if name == "SecureKafkaBroker":
        from .secure import SecureKafkaBroker

        return SecureKafkaBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "KAFKA_VERSION",
    "LOG4J_VERSION",
    "Acl",
    "BrokerError",
    "ClusterNode",
    "KafkaBroker",
    "KafkaCluster",
    "SecureKafkaBroker",
    "cache_dir",
    "check_java",
    "check_tools",
    "ensure_jars",
    "lib_dir",
    "run_foreground",
]
