"""A burst of AMI traffic while this thread is blocked: the fault a stalled event loop meets.

Asterisk drops an AMI client only when its writes to that client block for ``writetimeout``,
that is once the client's socket buffers are full. A handful of calls fits in them (megabytes on
loopback) however long the client stops reading; a busy contact center does not (the live call
model issue measured 12,500 messages/s in a 300-call burst). :func:`block_with_ami_burst`
stands in for that burst without placing hundreds of calls on a shared test machine: from a
connection of its own (which hears no events) it makes Asterisk broadcast large UserEvents to
every other client, and it does so *on the calling thread*, so the caller's event loop is blocked
for the whole time, exactly as a blocking call in the server would block it.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from cti_server.config import AmiSettings

FLOOD_EVENT = "CtiTestFlood"
_CHUNK = "x" * 900  # below Asterisk's 1 KB limit on one header line


@dataclass(frozen=True)
class Burst:
    """What the burst made Asterisk send to each listening client."""

    events: int
    bytes_per_client: int
    seconds: float  # how long the sending took


def _login(sock: socket.socket, settings: AmiSettings) -> None:
    secret = settings.secret.get_secret_value()
    sock.sendall(
        f"Action: Login\r\nUsername: {settings.username}\r\nSecret: {secret}\r\n"
        "Events: off\r\n\r\n".encode()
    )
    received = b""
    deadline = time.monotonic() + 10
    while b"Response:" not in received or not received.endswith(b"\r\n\r\n"):
        if time.monotonic() > deadline:
            raise AssertionError(f"flood connection: no login reply, got {received[:200]!r}")
        received += sock.recv(4096)
    if b"Response: Success" not in received:
        raise AssertionError(f"flood connection: login refused: {received[:200]!r}")


def block_with_ami_burst(
    settings: AmiSettings, seconds: float, megabytes: int = 48, batch: int = 20
) -> Burst:
    """Block this thread for ``seconds``; at its start Asterisk broadcasts ``megabytes`` of
    UserEvents to every client (more than loopback's socket buffers of a client that does not
    read hold), as fast as it takes them, then the thread stays blocked for the rest of the time.

    Each event carries about 3.6 KB; the replies to our own actions are read and discarded as
    we go, so it is the *other* clients that Asterisk finds not reading.
    """
    event = "".join(f"Data{n}: {_CHUNK}\r\n" for n in range(4))
    action = f"Action: UserEvent\r\nUserEvent: {FLOOD_EVENT}\r\n{event}\r\n".encode()
    started = time.monotonic()
    deadline = started + seconds
    sent = 0
    wanted = megabytes * 1024 * 1024 // len(action)
    with socket.create_connection((settings.host, settings.port), timeout=10) as sock:
        _login(sock, settings)
        sock.settimeout(10)
        while sent < wanted and time.monotonic() < deadline:
            sock.sendall(action * batch)
            sent += batch
            sock.setblocking(False)
            try:
                while sock.recv(65536):
                    pass
            except BlockingIOError:
                pass
            finally:
                sock.settimeout(10)
    flooded = time.monotonic() - started
    time.sleep(max(0.0, deadline - time.monotonic()))  # still blocked, as a stalled loop is
    return Burst(events=sent, bytes_per_client=sent * len(action), seconds=flooded)
