# -*- test-case-name: tests.test_web_forwarded -*-
"""
C{X-Forwarded-For} from trusted proxies (C{--trusted-proxies}): behind a
load balancer, the sender's address, not the balancer's, is an HTTP
record's source and the peer that per-client limits count.

Only hops the operator names are believed: the header is read from its
right end (the hop nearest this node) leftwards while each address is a
trusted proxy, and the first address that is not one is the client.  A
request whose peer is not a trusted proxy keeps its peer, whatever it
claims.  (TCP listeners take the PROXY protocol instead: an endpoint
string wrapped in C{haproxy:}, e.g. C{--tcp haproxy:tcp:5140}.)
"""

from __future__ import annotations

import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parseTrustedProxies(text: str) -> tuple[Network, ...]:
    """
    Parse C{--trusted-proxies}: addresses or networks, comma-separated
    (C{10.0.0.5,10.1.0.0/16,::1}).

    @raise ValueError: naming the first entry that is neither.
    """
    found = []
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            found.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"not an address or network: {entry!r} (e.g. 10.0.0.5,10.1.0.0/16)") from None
    if not found:
        raise ValueError("no address given (e.g. 10.0.0.5,10.1.0.0/16)")
    return tuple(found)


parseTrustedProxies.coerceDoc = "Comma-separated addresses or networks."  # type: ignore[attr-defined]


def isTrusted(address: str, trusted: tuple[Network, ...]) -> bool:
    """
    @return: whether C{address} (an IP address, IPv6 possibly in brackets)
        is in one of the C{trusted} networks.
    """
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def forwardedClient(peer: str, header: bytes | None, trusted: tuple[Network, ...]) -> str | None:
    """
    @param peer: the connection's peer address.
    @param header: the request's C{X-Forwarded-For} (all of its values
        joined with commas), or L{None}.
    @return: the client address the trusted proxies report, or L{None} to
        keep C{peer} (it is not a trusted proxy, or no usable address was
        forwarded).
    """
    if not trusted or header is None or not isTrusted(peer, trusted):
        return None
    hops = [hop.strip() for hop in header.decode("latin-1").split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop.strip("[]"))
        except ValueError:
            # Not an address: nothing to its left can be believed.
            return None
        if not isTrusted(hop, trusted):
            return hop.strip("[]")
    return None
