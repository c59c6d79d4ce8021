"""The journals page executions by (start date, ARN): equal start dates are neither skipped nor repeated."""

from __future__ import annotations

from typing import Any

import pytest

from dmap.journal import MemoryJournal, RedisJournal
from dmap.records import Execution


@pytest.fixture(params=["memory", "fakeredis", "redis"])
def journal(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemoryJournal()
    client = request.getfixturevalue("fake_redis" if request.param == "fakeredis" else "real_redis")
    return RedisJournal(client, prefix="tpaging")


def test_executions_page_through_ties_and_expired_records(journal: Any) -> None:
    dates = [f"2026-12-06T12:00:0{n // 3}.000Z" for n in range(10)]  # groups of three equal start dates
    for n, date in enumerate(dates):
        arn = f"arn:aws:states:us-east-1:000000000000:execution:sm:e{n:02d}"
        journal.save_execution(Execution(execution_arn=arn, name=f"e{n:02d}", state_machine_name="sm", start_date=date))
    expected = [e.execution_arn for e in journal.executions(limit=100)]
    assert len(expected) == 10 and expected[0].endswith(("e09",))
    for size in (1, 2, 3, 4, 10, 11):
        seen, after = [], None
        while True:
            page, after = journal.executions_page(limit=size, after=after)
            assert len(page) <= size
            seen += [e.execution_arn for e in page]
            if after is None:
                break
        assert seen == expected, size
    if isinstance(journal, RedisJournal):  # a record that expired leaves its ARN in the index: pruned, not listed
        journal.client.delete(journal._key("x", expected[1]))
        page, after = journal.executions_page(limit=2)
        assert [e.execution_arn for e in page] == [expected[0], expected[2]] and after is not None
