"""The pacer of the celery dispatch path: pack sizes from permits and worker slots, and how long grants gather."""

from __future__ import annotations

from dmap.pacing import LINGER_MAX, Pacer
from dmap.store import MAX_PERMITS, Acquired, Lease


def _leases(n: int) -> list[Lease]:
    return [Lease(c, f"1-t{c}", 1) for c in range(n)]


def _pacer(slots: int, permits: int, held: int = 0, most: int = 16) -> Pacer:
    pacer = Pacer(lambda: slots, most)
    pacer.observe(Acquired([], 0, -1, 0, held, permits))
    return pacer


def test_a_limited_run_sends_a_pack_running_and_one_waiting_per_slot() -> None:
    pacer = _pacer(slots=2, permits=8, held=8)
    assert pacer.target() == 2
    assert [len(p) for p in pacer.packs(_leases(8), held_before=0)] == [2, 2, 2, 2]
    assert [len(p) for p in pacer.packs(_leases(3), held_before=6)] == [2, 1]  # even split, steady state
    assert {len(p) for p in _pacer(slots=2, permits=1000).packs(_leases(1000), 0)} <= {15, 16}


def test_packs_cover_every_lease_once_in_order() -> None:
    for slots, permits, granted, held in [(2, 1000, 1000, 0), (3, 8, 5, 2), (1, 1, 1, 0), (4, MAX_PERMITS, 256, 0)]:
        packs = _pacer(slots, permits).packs(_leases(granted), held)
        assert [lease.child for pack in packs for lease in pack] == list(range(granted))
        assert all(1 <= len(pack) <= 16 for pack in packs)


def test_idle_slots_each_get_a_share_of_a_small_grant() -> None:
    packs = _pacer(slots=4, permits=100).packs(_leases(8), held_before=0)
    assert len(packs) >= 4


def test_a_concurrency_at_or_below_the_slots_sends_one_child_per_message() -> None:
    assert _pacer(slots=2, permits=2).target() == 1
    assert [len(p) for p in _pacer(slots=2, permits=3).packs(_leases(3), 0)] == [1, 1, 1]


def test_without_known_workers_the_old_rule_applies() -> None:
    pacer = _pacer(slots=0, permits=100)
    assert [len(p) for p in pacer.packs(_leases(20), 0)] == [1] * 20
    assert [len(p) for p in pacer.packs(_leases(256), 0)] == [16] * 16
    assert pacer.linger() == 0.0


def test_grants_gather_only_while_queued_work_lasts_and_never_long() -> None:
    pacer = _pacer(slots=2, permits=8, held=8)
    pacer.rate = 1000.0
    assert 0 < pacer.linger() <= min(LINGER_MAX, 0.5 * 6 / 1000)
    pacer = _pacer(slots=2, permits=1000, held=1000)
    pacer.rate = 10.0  # slow children: a pack would take long to gather, the cap bounds it
    assert pacer.linger() == LINGER_MAX
    pacer = _pacer(slots=2, permits=8, held=2)
    pacer.rate = 1000.0
    assert pacer.linger() == 0.0  # nothing queued behind the running children: grant at once


def test_saturated_when_every_permit_is_out() -> None:
    assert _pacer(slots=2, permits=8, held=8).saturated()
    assert not _pacer(slots=2, permits=8, held=7).saturated()
    assert not Pacer(lambda: 2, 16).saturated()  # nothing known yet
