"""gunicorn's threaded worker, with keep-alive connections shared out evenly between the workers.

Every gthread worker accepts from the one listening socket, so whichever worker wakes first takes the next
connection. A keep-alive connection then stays with that worker for its whole life, and a burst of new
connections (a proxy filling its upstream pool, a load test starting) can leave one worker with three and
another with twenty. Each worker gets about the same CPU, so the twenty wait about seven times as long: measured
with 32 connections on 2 CPUs, per-connection mean latency ranged from 10 to 100 ms, and the p99 followed the
crowded worker. With this worker they ranged from 46 to 57 ms.

The rule: a worker accepts only while it holds no more than the average number of connections. The counts are
in memory shared by all workers (made in the master, before it forks). Some worker is always at or below the
average, so a connection is never refused; a worker held back looks again every few milliseconds, because the
others' counts change without waking it, and takes a connection that has waited 50 ms whatever the counts say
(the worker below its share may be stuck). SO_REUSEPORT (gunicorn's `reuse_port`) would spread connections by a
hash instead, but a worker that exits (max_requests) then resets the connections queued on its own socket.

This builds on gthread internals (`accept`, `set_accept_enabled`, `_accepting`, `nr_conns`) of the gunicorn
version in requirements.txt; tests/test_gunicorn.py checks the spread under gunicorn.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import select
import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

SLOTS = 256  # more workers than this on one host: the extra ones accept as plain gthread workers do
HELD_BACK_POLL_SECONDS = 0.005
LEFT_WAITING_SECONDS = 0.05

# slot i: the pid of the worker using it (0: free) and how many connections it holds. Made in the master before
# it forks, so every worker sees the same memory; each worker claims a slot for itself as it starts and writes
# only its own count. The master frees the slot of every worker it reaps (gunicorn.conf.py's child_exit), so a
# worker killed outright (after a timeout) is not counted as one holding no connections.
_pids = multiprocessing.RawArray(ctypes.c_long, SLOTS)
_connections = multiprocessing.RawArray(ctypes.c_long, SLOTS)
_slots_used = multiprocessing.RawValue(ctypes.c_int, 0)  # slots beyond this were never claimed
_claiming = multiprocessing.Lock()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - it exists, under another user
        return True
    return True


def _claim_slot(pid: int) -> int | None:
    """In a starting worker: a slot no live worker holds, now ours; None if there is none (or no lock in time)."""
    if not _claiming.acquire(timeout=1.0):
        return None
    try:
        for slot in range(SLOTS):
            holder = _pids[slot]
            if holder and _alive(holder):
                continue
            _connections[slot] = 0
            _pids[slot] = pid
            _slots_used.value = max(_slots_used.value, slot + 1)
            return slot
        return None
    finally:
        _claiming.release()


def release_slot(pid: int) -> None:
    """The worker `pid` is gone: it no longer counts (the master calls this for every worker it reaps)."""
    for slot in range(_slots_used.value):
        if _pids[slot] == pid:
            _pids[slot] = 0
            _connections[slot] = 0


def _within_fair_share(mine: int) -> bool:
    workers = total = 0
    for slot in range(_slots_used.value):
        if _pids[slot]:
            workers += 1
            total += _connections[slot]
    return mine * workers <= total


class BalancedThreadWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn has no type hints
    """`worker_class = "shop.gunicorn_worker.BalancedThreadWorker"`: gthread, accepting only up to its share."""

    slot: int | None = None
    _waiting_since: float | None = None

    def init_process(self) -> None:
        self.slot = _claim_slot(os.getpid())
        try:
            super().init_process()  # runs the worker until it stops
        finally:
            release_slot(os.getpid())

    def _publish(self) -> None:
        if self.slot is not None:
            _connections[self.slot] = self.nr_conns

    def _may_accept(self) -> bool:
        return self.slot is None or _within_fair_share(self.nr_conns)

    def set_accept_enabled(self, enabled: bool) -> None:
        # gthread calls this whenever its own limit (worker_connections) would change the answer, and, while we
        # hold back, on every turn of its loop: each time with the counts as they are now
        self._publish()
        super().set_accept_enabled(enabled and self._may_accept())

    def accept(self, listener: Any) -> None:
        if not self._may_accept():
            super().set_accept_enabled(False)  # the connection stays queued for a worker below its share
            return
        super().accept(listener)
        self._publish()

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        self._publish()  # connections closed since the last turn
        held_back = self.alive and not self._accepting and self.nr_conns < self.worker_connections
        if held_back:
            timeout = min(timeout, HELD_BACK_POLL_SECONDS)
        super().wait_for_and_dispatch_events(timeout)
        if held_back:
            self._accept_if_left_waiting()

    def _accept_if_left_waiting(self) -> None:
        """The counts can mislead (a worker below its share may be stuck, or stopped): a connection that none
        has taken for LEFT_WAITING_SECONDS is taken here, whatever they say."""
        waiting, _, _ = select.select(self.sockets, [], [], 0)
        if not waiting:
            self._waiting_since = None
            return
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        elif now - self._waiting_since >= LEFT_WAITING_SECONDS:
            self._waiting_since = None
            for listener in waiting:
                ThreadWorker.accept(self, listener)  # gthread's own, without the share check
            self._publish()
