"""A listening socket for an HTTP server of motwatch's (the worker's, the collector's), and its URL.

The socket is bound before the server is built, so that port 0 takes a free
port and a port in use fails at once, in one line naming the settings.
"""

from __future__ import annotations

import socket

from motwatch.settings import ConfigError


def listen_socket(bind: str, port: int, settings: str = "web_bind/web_port") -> socket.socket:
    """A socket listening on ``bind:port`` (port 0: a free one); a ConfigError in one line, naming
    ``settings``, if it cannot.

    ``""`` binds every IPv4 interface; ``"::"`` every interface of both IP versions where
    the system allows it, so that 127.0.0.1 reaches it as well.
    """
    try:
        family, _, _, _, address = socket.getaddrinfo(
            bind or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        dualstack = family == socket.AF_INET6 and address[0] == "::" and socket.has_dualstack_ipv6()
        return socket.create_server((address[0], port), family=family, dualstack_ipv6=dualstack)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise ConfigError(f"{settings}: cannot listen on {bind or '*'}:{port}: {why}") from None


def url_of(sock: socket.socket) -> str:
    """The URL this machine reaches the socket at: a wildcard address is reached on the loopback."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
