"""A TCP proxy that adds a one-way delay in each direction, for putting Redis "a network hop away".

``python -m bench.latency_proxy --upstream 127.0.0.1:6379 --delay-ms 1`` listens on a free port and
prints ``listening <port> control <port>``; a round trip through it costs ``2 x delay`` more than
direct. This machine's kernel has no ``netem`` qdisc, so the benchmark's network lives here.

Each chunk read from one side is delivered to the other at ``t_received + delay`` from a FIFO per
direction, so pipelined or concurrent traffic overlaps its delays as it would on a wire: the delay
is latency, never a cap on the rate. The loop runs on ``select()``, whose timeout has microsecond
resolution (epoll's is a millisecond, which would turn a 0.25 ms delay into 1 ms).

While it relays, the proxy counts per client connection what the benchmark reports per child:
*round trips* (a request burst sent after the server last answered: what a client waits a round trip
for) and *commands* (RESP arrays, by name, parsed from the client's bytes), and its own CPU time (is
the proxy the bound?). A line protocol on the control port reads and resets them and changes the delay
at run time: ``stats``, ``reset``, ``delay <ms>``, each answered with one JSON line. Owns no Redis
knowledge beyond RESP framing.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import selectors
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PR_SET_TIMERSLACK = 29  # linux/prctl.h

HIGH_WATER = 1 << 20
"""Bytes queued towards one side before the other side's reading is paused (back-pressure)."""


@dataclass
class Stats:
    """What the proxy has relayed since the last reset."""

    connections: int = 0
    round_trips: int = 0
    commands: Counter[str] = field(default_factory=Counter)
    bytes_up: int = 0
    bytes_down: int = 0
    cpu_start: float = field(default_factory=time.process_time)  # the proxy's own CPU: is it the bound?

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {
            "connections": self.connections,
            "round_trips": self.round_trips,
            "commands": sum(self.commands.values()),
            "by_command": dict(self.commands.most_common()),
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "cpu_seconds": time.process_time() - self.cpu_start,
        }


class RespCounter:
    """Counts RESP request arrays (``*<n>\\r\\n`` then ``n`` bulk strings) fed in arbitrary chunks, by command name.

    Only the framing is parsed: bulk payloads are skipped by length, so binary values cannot confuse it.
    Inline commands (a bare text line, which redis-py and kombu never send) count as one command each.
    """

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts
        self.buffer = b""
        self.args_left = 0  # bulk strings still expected in the current array
        self.skip = 0  # payload bytes (plus CRLF) of the current bulk string still to skip
        self.need_name = False  # the next bulk string is the command name

    def feed(self, data: bytes) -> None:
        """Consume one chunk of client bytes."""
        buf = self.buffer + data if self.buffer else data
        pos, end = 0, len(buf)
        while pos < end:
            if self.skip:
                take = min(self.skip, end - pos)
                pos += take
                self.skip -= take
                continue
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                break
            if self.need_name and buf[pos : pos + 1] == b"$":
                length = int(buf[pos + 1 : line_end])
                name_end = line_end + 2 + length
                if name_end + 2 > end:
                    break  # wait for the whole name: it is short
                self.counts[buf[line_end + 2 : name_end].decode("latin-1").upper()] += 1
                self.need_name = False
                self.args_left -= 1
                pos = name_end + 2
                continue
            head = buf[pos : pos + 1]
            if head == b"$":
                self.skip = int(buf[pos + 1 : line_end]) + 2
                self.args_left -= 1
            elif head == b"*" and self.args_left == 0:
                self.args_left = int(buf[pos + 1 : line_end])
                self.need_name = self.args_left > 0
            elif self.args_left == 0 and line_end > pos:
                self.counts[buf[pos:line_end].split(b" ", 1)[0].decode("latin-1").upper()] += 1
            pos = line_end + 2
        self.buffer = buf[pos:] if pos < end else b""


class DelayedSide:
    """Bytes bound for one transport, each chunk released at its arrival time plus the delay, in order."""

    def __init__(self, relay: Relay, transport: asyncio.Transport, source: Any) -> None:
        self.relay = relay
        self.proxy = relay.proxy
        self.transport = transport
        self.source = source  # the protocol whose reading is paused when too much is queued here
        self.queue: deque[tuple[float, bytes]] = deque()
        self.queued = 0
        self.timer: asyncio.TimerHandle | None = None
        self.ending: str | None = None  # "eof" (the sender half-closed) or "close" (the sender is gone)
        self.eof_sent = False

    def send(self, data: bytes) -> None:
        """Deliver ``data`` after the proxy's current delay (at once when it is zero and nothing waits)."""
        delay = self.proxy.delay
        if delay <= 0 and not self.queue:
            if not self.transport.is_closing():
                self.transport.write(data)
            return
        loop = self.proxy.loop
        self.queue.append((loop.time() + delay, data))
        self.queued += len(data)
        if self.queued > HIGH_WATER:
            self.source.pause()
        if self.timer is None:
            self.timer = loop.call_at(self.queue[0][0], self.flush)

    def flush(self) -> None:
        """Write every chunk that is due; re-arm for the next one."""
        self.timer = None
        loop = self.proxy.loop
        now = loop.time()
        while self.queue and self.queue[0][0] <= now:
            _, data = self.queue.popleft()
            self.queued -= len(data)
            if not self.transport.is_closing():
                self.transport.write(data)
        if self.queued <= HIGH_WATER // 2:
            self.source.resume()
        if self.queue:
            self.timer = loop.call_at(self.queue[0][0], self.flush)
        elif self.ending:
            self._end()

    def end_after_queue(self, *, close: bool) -> None:
        """Pass the sender's end on once what is queued was delivered (a FIN is delayed like the data before it).

        Args:
            close: the sender is gone (close the transport), rather than only done sending (half-close it).
        """
        self.ending = "close" if close else (self.ending or "eof")
        if not self.queue:
            self._end()

    def _end(self) -> None:
        if self.ending == "close" or not self.transport.can_write_eof():
            self.transport.close()
        elif not self.eof_sent and not self.transport.is_closing():
            self.eof_sent = True
            self.transport.write_eof()
            self.relay.half_closed()


class _End(asyncio.Protocol):
    """One end of a relayed connection: reads its transport, hands the bytes to the other end's :class:`DelayedSide`."""

    def __init__(self, relay: Relay, upstream: bool) -> None:
        self.relay = relay
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.relay.received(data, self.upstream)

    def eof_received(self) -> bool:
        self.relay.eof(self.upstream)
        return True  # keep our write side open until the peer's queued bytes were delivered

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.lost(self.upstream)

    def pause(self) -> None:
        """Stop reading: the other side has too much queued."""
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        """Read again."""
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()


class Relay:
    """One client connection and its upstream connection, with the counters of the client's traffic."""

    def __init__(self, proxy: LatencyProxy) -> None:
        self.proxy = proxy
        self.client = _End(self, upstream=False)
        self.server: _End | None = None
        self.to_server: DelayedSide | None = None
        self.to_client: DelayedSide | None = None
        self.early: list[bytes] = []  # client bytes that came before the upstream connection was up
        self.answered = True  # the server spoke since the client's last request: the next one is a new round trip
        self.parser: RespCounter | None = RespCounter(proxy.stats.commands)
        self.client_ended: bool | None = None  # before upstream is up: None, or whether the client closed (True)

    async def open(self) -> None:
        """Connect upstream, then relay what the client already sent."""
        try:
            _, server = await self.proxy.loop.create_connection(
                lambda: _End(self, upstream=True), self.proxy.upstream_host, self.proxy.upstream_port
            )
        except OSError:
            if self.client.transport is not None:
                self.client.transport.close()
            return
        assert self.client.transport is not None and server.transport is not None
        self.server = server
        self.to_server = DelayedSide(self, server.transport, self.client)
        self.to_client = DelayedSide(self, self.client.transport, server)
        for data in self.early:
            self.to_server.send(data)
        self.early.clear()
        if self.client_ended is not None:
            self.to_server.end_after_queue(close=self.client_ended)

    def received(self, data: bytes, upstream: bool) -> None:
        """Count and forward one chunk read from the client or (``upstream``) from the server."""
        stats = self.proxy.stats
        if upstream:
            stats.bytes_down += len(data)
            self.answered = True
            assert self.to_client is not None
            self.to_client.send(data)
            return
        stats.bytes_up += len(data)
        if self.answered:
            stats.round_trips += 1
            self.answered = False
        if self.parser is not None:
            try:
                self.parser.feed(data)
            except ValueError:  # not RESP after all: stop counting this connection's commands, keep relaying
                self.parser = None
        if self.to_server is None:
            self.early.append(data)
        else:
            self.to_server.send(data)

    def eof(self, upstream: bool) -> None:
        """One end is done sending: half-close the other once its queued bytes are out."""
        self._end(upstream, close=False)

    def lost(self, upstream: bool) -> None:
        """One end went away: close the other once its queued bytes are out."""
        self._end(upstream, close=True)
        self.proxy.relays.discard(self)

    def _end(self, upstream: bool, *, close: bool) -> None:
        side = self.to_client if upstream else self.to_server
        if side is not None:
            side.end_after_queue(close=close)
        elif not upstream:  # upstream is still connecting: pass the end on when it is up
            self.client_ended = close or bool(self.client_ended)

    def half_closed(self) -> None:
        """Close both connections once each direction was half-closed."""
        if self.to_client is not None and self.to_server is not None and self.to_client.eof_sent:
            if self.to_server.eof_sent:
                self.to_client.transport.close()
                self.to_server.transport.close()


class LatencyProxy:
    """Relay ``listen`` to ``upstream`` adding ``delay`` seconds each way; count what clients send."""

    def __init__(self, upstream_host: str, upstream_port: int, delay: float = 0.0) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.delay = delay
        self.stats = Stats()
        self.relays: set[Relay] = set()
        self.loop = asyncio.get_running_loop()
        self.servers: list[asyncio.Server] = []
        self.controls: set[asyncio.StreamWriter] = set()

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Start accepting clients; the port listened on."""
        server = await self.loop.create_server(self._accept, host, port, backlog=512)
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    def _accept(self) -> _End:
        relay = Relay(self)
        self.relays.add(relay)
        self.stats.connections += 1
        self.loop.create_task(relay.open())
        return relay.client

    async def control(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve the control protocol (``stats``, ``reset``, ``delay <ms>``); the port listened on."""
        server = await asyncio.start_server(self._control_client, host, port)
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _control_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.controls.add(writer)
        try:
            while line := await reader.readline():
                verb, _, arg = line.decode().strip().partition(" ")
                if verb == "delay":
                    self.delay = float(arg) / 1000.0
                elif verb == "reset":
                    self.stats = Stats(connections=len(self.relays))
                    for relay in self.relays:
                        if relay.parser is not None:
                            relay.parser.counts = self.stats.commands
                elif verb != "stats":
                    writer.write(b'{"error": "unknown verb"}\n')
                    continue
                writer.write((json.dumps({"delay_ms": self.delay * 1000, **self.stats.as_dict()}) + "\n").encode())
                await writer.drain()
        except ConnectionError:
            pass  # the controller went away: nothing to answer
        finally:
            self.controls.discard(writer)
            writer.close()

    def close(self) -> None:
        """Stop accepting and drop every relayed connection."""
        for server in self.servers:
            server.close()
        for writer in list(self.controls):
            writer.close()
        for relay in list(self.relays):
            for end in (relay.client, relay.server):
                if end is not None and end.transport is not None:
                    end.transport.close()


def new_loop() -> asyncio.AbstractEventLoop:
    """An event loop on ``select()`` (microsecond timeouts; epoll rounds to milliseconds)."""
    return asyncio.SelectorEventLoop(selectors.SelectSelector())


def tight_timers() -> None:
    """Ask Linux to wake this process on time: the default 50 us timer slack is 10% of a 0.5 ms round trip per hop."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # best effort: the delay is still at least the configured one, only less exact


async def serve(args: argparse.Namespace) -> None:
    """Run the proxy until SIGTERM or SIGINT."""
    host, _, port = args.upstream.rpartition(":")
    proxy = LatencyProxy(host or "127.0.0.1", int(port), args.delay_ms / 1000.0)
    listen_port = await proxy.listen(args.host, args.port)
    control_port = await proxy.control(args.host, args.control_port)
    sys.stdout.write(f"listening {listen_port} control {control_port}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        proxy.loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    proxy.close()
    # Control clients wait in readline(): closing their transports ends them; let them finish before the loop closes.
    pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    if pending:
        await asyncio.wait(pending, timeout=5)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.latency_proxy``."""
    parser = argparse.ArgumentParser(prog="python -m bench.latency_proxy", description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", default="127.0.0.1:6379", help="host:port to relay to")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay added in each direction")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    parser.add_argument("--control-port", type=int, default=0, help="control port (0: a free one)")
    args = parser.parse_args(argv)
    tight_timers()
    loop = new_loop()
    try:
        loop.run_until_complete(serve(args))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
