"""The network benchmark's latency proxy: bytes pass both ways in order, every chunk waits at least the delay.

An in-process echo server stands in for Redis, so these need no service. No timed upper bounds:
the machine may be busy, so only "at least the delay" is asserted.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from bench.latency_proxy import LatencyProxy, RespCounter, new_loop


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


def run_with_proxy(delay: float, body: Callable[[LatencyProxy, int], Awaitable[None]]) -> None:
    """Run ``body(proxy, port)`` with a proxy of ``delay`` seconds in front of an echo server."""

    async def main() -> None:
        echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
        proxy = LatencyProxy("127.0.0.1", echo.sockets[0].getsockname()[1], delay)
        port = await proxy.listen()
        try:
            await body(proxy, port)
        finally:
            proxy.close()
            echo.close()

    loop = new_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def test_bytes_pass_through_both_ways_unchanged_with_and_without_delay() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: many chunks, and more than the proxy queues before back-pressure

    async def body(proxy: LatencyProxy, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        await writer.drain()
        assert await reader.readexactly(len(payload)) == payload
        writer.close()

    for delay in (0.0, 0.001):
        run_with_proxy(delay, body)


def test_a_round_trip_takes_at_least_twice_the_delay() -> None:
    delay = 0.02

    async def body(proxy: LatencyProxy, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):
            start = time.perf_counter()
            writer.write(b"*1\r\n$4\r\nPING\r\n")
            await reader.readexactly(14)
            assert time.perf_counter() - start >= 2 * delay
        writer.close()
        assert proxy.stats.round_trips == 3
        assert proxy.stats.commands == Counter({"PING": 3})

    run_with_proxy(delay, body)


def test_the_delay_can_change_while_it_relays() -> None:
    async def body(proxy: LatencyProxy, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"a")
        assert await reader.readexactly(1) == b"a"
        proxy.delay = 0.015
        start = time.perf_counter()
        writer.write(b"b")
        assert await reader.readexactly(1) == b"b"
        assert time.perf_counter() - start >= 0.03
        writer.close()

    run_with_proxy(0.0, body)


def test_many_concurrent_pipelined_connections_keep_their_byte_order() -> None:
    async def client(port: int, n: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = [f"{n}:{i}\n".encode() for i in range(200)]
        for line in lines:  # pipelined: no waiting between writes
            writer.write(line)
        await writer.drain()
        got = [await reader.readline() for _ in lines]
        assert got == lines
        writer.close()

    async def body(proxy: LatencyProxy, port: int) -> None:
        await asyncio.gather(*(client(port, n) for n in range(50)))
        assert proxy.stats.connections == 50

    run_with_proxy(0.002, body)


def test_a_client_closing_closes_the_upstream_side_after_its_bytes() -> None:
    async def body(proxy: LatencyProxy, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"last words")
        writer.write_eof()
        assert await reader.read() == b"last words"  # echoed, then EOF once the echo server saw ours
        writer.close()

    run_with_proxy(0.005, body)


def test_resp_commands_are_counted_by_name_however_the_bytes_are_split() -> None:
    stream = (
        b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$13\r\n*2\r\n$3\r\nGET\r\n\r\n"  # a value that looks like a command
        b"*1\r\n$5\r\nmulti\r\n*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n*1\r\n$4\r\nEXEC\r\nPING\r\n"
    )
    expected = Counter({"SET": 1, "MULTI": 1, "INCR": 1, "EXEC": 1, "PING": 1})
    for size in (1, 2, 3, 7, len(stream)):
        counts: Counter[str] = Counter()
        parser = RespCounter(counts)
        for at in range(0, len(stream), size):
            parser.feed(stream[at : at + size])
        assert counts == expected, size
