#!/usr/bin/env python3
"""A TCP proxy that behaves like a line: every byte is delayed by half the round-trip time
in each direction, and each direction is limited to a bandwidth shared by all connections
(a token bucket). For benches/network.sh: restoring from an S3 store over a home line.

usage: shaper.py LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT RTT_MS MBIT_PER_S
"""
import asyncio
import sys
import time


class Bucket:
    """Bytes leave no faster than `rate` per second, across every connection.

    Up to `BURST` seconds of unused line time is kept as credit: the event loop's timers
    wake a millisecond late or more, and without credit every wait that overslept was lost,
    capping the proxy at 64 KiB per wake-up (about 60 MB/s) whatever the rate asked for."""

    BURST = 0.005

    def __init__(self, rate):
        self.rate = rate
        self.free_at = time.monotonic()

    async def take(self, n):
        now = time.monotonic()
        self.free_at = max(self.free_at, now - self.BURST) + n / self.rate
        wait = self.free_at - now
        if wait > 0:
            await asyncio.sleep(wait)


async def pipe(reader, writer, bucket, delay):
    queue = asyncio.Queue()

    async def read():
        while True:
            try:
                data = await reader.read(1 << 16)
            except ConnectionError:
                data = b""
            await queue.put((time.monotonic() + delay, data))
            if not data:
                return

    async def write():
        while True:
            due, data = await queue.get()
            late = due - time.monotonic()
            if late > 0:
                await asyncio.sleep(late)
            if not data:
                try:
                    writer.write_eof()
                except (OSError, RuntimeError):
                    pass
                return
            await bucket.take(len(data))
            try:
                writer.write(data)
                await writer.drain()
            except ConnectionError:
                return

    await asyncio.gather(read(), write())


async def main():
    port, host, up_port, rtt_ms, mbit = sys.argv[1:6]
    delay = float(rtt_ms) / 2000.0
    rate = float(mbit) * 1e6 / 8
    down, up = Bucket(rate), Bucket(rate)

    async def handle(cr, cw):
        try:
            ur, uw = await asyncio.open_connection(host, int(up_port))
        except OSError:
            cw.close()
            return
        await asyncio.gather(pipe(cr, uw, up, delay), pipe(ur, cw, down, delay))
        for w in (cw, uw):
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", int(port))
    async with server:
        await server.serve_forever()


asyncio.run(main())
