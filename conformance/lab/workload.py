"""The lab pods' "container": an echo server for port-forward and a CRI-format log for attach and logs.

kwok fakes pods; what the API server streams to comes from kwok's config: exec runs local processes,
port-forward dials `--echo-port`, attach and `logs -f` follow `--log-file`. This process provides the
last two. Run as ``python -m conformance.lab.workload --echo-port P --log-file F``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import signal
from pathlib import Path

READ_CHUNK = 64 * 1024
# Bounded: a client holding many idle connections cannot exhaust the lab.
MAX_CONNECTIONS = 512
TICK_S = 0.2  # fast enough that a one-second attach or logs -f sees several lines


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, slots: asyncio.Semaphore) -> None:
    if slots.locked():
        writer.close()
        return
    async with slots:
        try:
            while data := await reader.read(READ_CHUNK):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


def cri_log_line(stream: str, text: str, now: dt.datetime | None = None) -> str:
    """One line in the CRI log format kwok parses: `<RFC3339Nano> <stream> F <text>`."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{stamp} {stream} F {text}\n"


async def _tick(log_file: Path, stop: asyncio.Event) -> None:
    n = 0
    with open(log_file, "a", buffering=1) as log:
        while not stop.is_set():
            log.write(cri_log_line("stdout", f"tick {n}"))
            n += 1
            try:
                await asyncio.wait_for(stop.wait(), TICK_S)
            except TimeoutError:
                pass


async def serve(echo_port: int, log_file: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    slots = asyncio.Semaphore(MAX_CONNECTIONS)
    server = await asyncio.start_server(lambda r, w: _echo(r, w, slots), "127.0.0.1", echo_port)
    print(f"ready echo 127.0.0.1:{echo_port} log {log_file}", flush=True)
    async with server:
        await _tick(log_file, stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--echo-port", type=int, required=True)
    parser.add_argument("--log-file", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.echo_port, args.log_file))


if __name__ == "__main__":
    main()
