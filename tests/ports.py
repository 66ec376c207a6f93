"""
Ports for the servers the tests start (C{twistd logsvc}, PostgreSQL).

A port found by binding port 0 and closing the socket was free a moment
ago, but the kernel hands the same ephemeral range to every outgoing
connection, and C{trial --jobs} runs several workers at once: between the
test picking a port and the server binding it, another process can take
it, and the test fails with "address in use" or, worse, talks to someone
else's server.  So ports come from below the ephemeral range, where the
kernel never picks one by itself, and each is reserved with a lock file
shared by every worker of one trial run (they have the same parent
process), so no two tests of a run are given the same port.
"""

from __future__ import annotations

import os
import random
import socket
import tempfile

#: Where ports are taken from: below Linux's default ephemeral range
#: (32768-60999), above the well-known and most registered ports.
PORT_RANGE = (20000, 32000)

#: The lock directory of this trial run: workers of one run share a parent.
_LOCKS = os.path.join(tempfile.gettempdir(), f"logsvc-test-ports-{os.getppid()}")


def _reserve(port: int) -> bool:
    """
    @return: whether C{port} was not handed out before in this run, marking
        it as handed out.
    """
    os.makedirs(_LOCKS, exist_ok=True)
    try:
        os.close(os.open(os.path.join(_LOCKS, str(port)), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _bindable(port: int, kind: socket.SocketKind) -> bool:
    """
    @return: whether a socket of C{kind} can bind C{port} on 127.0.0.1 now.
    """
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick(kind: socket.SocketKind) -> int:
    for _ in range(1000):
        port = random.randrange(*PORT_RANGE)
        if _bindable(port, kind) and _reserve(port):
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE} after 1000 tries")


def freePort() -> int:
    """
    @return: a TCP port on 127.0.0.1 that is free now and that no other
        test of this run is given.
    """
    return _pick(socket.SOCK_STREAM)


def freeUDPPort() -> int:
    """
    @return: a UDP port on 127.0.0.1 that is free now and that no other
        test of this run is given.
    """
    return _pick(socket.SOCK_DGRAM)
