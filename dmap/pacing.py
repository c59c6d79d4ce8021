"""Pacing of a Map Run's grants on the celery backend: how many children go in one message, and when.

A concurrency-limited run gets its permits back one finished child at a time; granted and sent
one at a time, every child pays a whole Celery message (three broker round trips on the worker, one
on the coordinator) plus an acquire and a wake. :class:`Pacer` makes that cost independent of how
permits arrive: it lets freed permits gather for a moment when the workers have enough queued work
not to notice (never longer than half the time that work lasts, nor :data:`LINGER_MAX`), and it
splits grants into packs sized from the run's permits and the live worker slots of the registry,
so every slot has a pack running and one waiting. It grants nothing itself: the store's acquire
does, so MaxConcurrency, fencing and the cursor are the store's alone. Owns no I/O but the slot
count it is handed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from .store import MAX_PERMITS, Acquired, Lease

LINGER_MAX = 0.02
"""The longest the coordinator lets freed permits gather before granting them (seconds)."""


def legacy_pack_size(granted: int, most: int) -> int:
    """Children per message without a pacer (no live worker known): 1 until 32+ permits come at once."""
    return max(1, min(most, granted // 16))


class Pacer:
    """Pack sizes and grant pacing for one Map Run.

    Args:
        slots: The live worker slots on the run's queue (0 when unknown); asked at most every
            ``refresh`` seconds.
        most: Most children in one message (``DMAP_DISPATCH_PACK``).
        refresh: Seconds between two reads of the slots.
    """

    def __init__(self, slots: Callable[[], int], most: int, *, refresh: float = 2.0) -> None:
        self._slots_of, self._most, self._refresh = slots, max(1, most), refresh
        self._slots, self._slots_at = 0, -math.inf
        self.held, self.permits = -1, 0
        self.rate = 0.0  # children granted per second, smoothed: in steady state, children finished per second
        self._last_grant: float | None = None

    @property
    def slots(self) -> int:
        """The live worker slots (0 when the registry knows none), refreshed every few seconds."""
        now = time.monotonic()
        if now - self._slots_at >= self._refresh:
            self._slots_at = now
            try:
                self._slots = max(0, int(self._slots_of()))
            except Exception:  # the registry is an optimisation: without it packs fall back to the legacy rule
                self._slots = 0
        return self._slots

    def target(self) -> int:
        """Children per pack once the run is in its steady state: a pack running and one waiting per slot."""
        slots = self.slots
        if slots <= 0 or self.permits <= 0:
            return 1
        return max(1, min(self._most, self.permits // (2 * slots)))

    def observe(self, acquired: Acquired) -> None:
        """Learn from an acquire: leases held, permits, and the grant rate."""
        self.held, self.permits = acquired.held, acquired.permits
        if not acquired.leases:
            return
        now = time.monotonic()
        if self._last_grant is not None and now > self._last_grant:
            sample = len(acquired.leases) / (now - self._last_grant)
            self.rate = sample if self.rate == 0 else 0.8 * self.rate + 0.2 * sample
        self._last_grant = now

    def saturated(self) -> bool:
        """Every permit is out: acquiring again before a wake would grant nothing."""
        return self.held >= 0 and self.permits > 0 and self.held >= self.permits

    def linger(self) -> float:
        """Seconds to let freed permits gather after a wake before acquiring (0: acquire now).

        Enough for about one pack of children to finish, and at most half the time the queued
        children last (held leases beyond the running slots, at the measured rate), so a worker
        never waits for a pack held back here.
        """
        slots, target = self.slots, self.target()
        if target <= 1 or self.rate <= 0 or self.held < 0:
            return 0.0
        queued = self.held - slots
        if queued <= 0:
            return 0.0
        return min(LINGER_MAX, target / self.rate, 0.5 * queued / self.rate)

    def packs(self, leases: Sequence[Lease], held_before: int) -> list[Sequence[Lease]]:
        """Split granted leases into messages.

        Args:
            leases: The leases just granted.
            held_before: Leases held before this grant (work the workers already have).
        """
        granted = len(leases)
        if granted == 0:
            return []
        slots = self.slots
        if slots <= 0:
            size = legacy_pack_size(granted, self._most)
        else:
            size = self.target() if self.permits < MAX_PERMITS else max(1, min(self._most, granted // (2 * slots)))
            if held_before < 2 * slots:  # idle slots: spread this grant over them rather than queue it behind one
                size = min(size, math.ceil(granted / slots))
        count = math.ceil(granted / size)
        base, extra = divmod(granted, count)  # even sizes: no straggler pack of one
        out: list[Sequence[Lease]] = []
        start = 0
        for i in range(count):
            end = start + base + (1 if i < extra else 0)
            out.append(leases[start:end])
            start = end
        return out
