"""Run cells ahead of pytest, a bounded number at a time, so an I/O-bound matrix does not wait cell by cell.

pytest calls tests one after another; a cell mostly waits on the network. On the first cell the prefetcher
submits every cell of this process, in collection order, to one event loop in a background thread, with at
most `concurrency` running at once; each test then only waits for its own result, so reports keep their
order and every outcome still belongs to its test. Under pytest-xdist a worker does not know which cells it
will be given, so there each cell runs when its test runs.

Idle cells mostly sleep (a minute or more of silence each): they start first, under their own bound
(IDLE_CONCURRENCY) rather than `concurrency`, so they overlap the rest of the matrix and a whole run grows by
about one idle period, not one per idle cell.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Sequence

from conformance.cells import IDLE_OPERATIONS, Cell, CellRunner
from conformance.model import CellResult

IDLE_CONCURRENCY = 128
# Idle cells start this far apart: dozens of TLS handshakes and upgrades at once, next to the first data
# cells, starve a loaded event loop past the connect budget (seen: 10 s connect timeouts at 2 cores).
IDLE_STAGGER_S = 0.3


class Prefetcher:
    def __init__(self, runner: CellRunner, cells: Sequence[Cell], concurrency: int) -> None:
        self.runner = runner
        self.cells = list(cells)
        self.concurrency = max(1, concurrency)
        self._futures: dict[str, concurrent.futures.Future[CellResult]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="conformance-prefetch", daemon=True)
        thread.start()
        self._loop = loop
        slots = asyncio.Semaphore(self.concurrency)
        idle_slots = asyncio.Semaphore(IDLE_CONCURRENCY)

        async def bounded(cell: Cell, slots: asyncio.Semaphore, delay: float = 0.0) -> CellResult:
            await asyncio.sleep(delay)
            async with slots:
                return await self.runner.run_async(cell)

        idle = [c for c in self.cells if c.key.operation in IDLE_OPERATIONS]
        for i, cell in enumerate(idle):  # first: they take longest, and wait mostly
            future = asyncio.run_coroutine_threadsafe(bounded(cell, idle_slots, i * IDLE_STAGGER_S), loop)
            self._futures[cell.id] = future
        for cell in self.cells:
            if cell.id not in self._futures:
                self._futures[cell.id] = asyncio.run_coroutine_threadsafe(bounded(cell, slots), loop)

    def result(self, cell: Cell) -> CellResult:
        with self._lock:
            if self._loop is None:
                self._start()
        future = self._futures.get(cell.id)
        if future is None:  # not known up front (e.g. selected later): run it now
            return self.runner.run(cell)
        return future.result()

    def close(self) -> None:
        if self._loop is None:
            return
        for future in self._futures.values():
            future.cancel()
        self._loop.call_soon_threadsafe(self._loop.stop)
