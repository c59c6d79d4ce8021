"""The engine benchmark's broker comparison: its table, its ``--brokers`` option, and its RabbitMQ cleanup.

No measurement runs here (benchmarks assert nothing): the table is fed fixed rates, and the cleanup
test declares a queue the way a run's workers do and checks the harness deletes it.
"""

from __future__ import annotations

import uuid

import pytest
from amqp.exceptions import NotFound
from kombu import Connection

from bench.engine import BrokerTable, parse, table_lines
from bench.harness import Workers


def test_each_column_group_is_a_ratio_to_raw_celery_on_its_own_broker() -> None:
    redis_group = BrokerTable("redis", raw=500.0, rates={(8, "a"): 1000.0, (8, "b"): 50_000.0})
    amqp_group = BrokerTable("amqp", raw=250.0, rates={(8, "a"): 1000.0})

    lines = table_lines([redis_group, amqp_group], items=3000, batch_items=20000)

    assert "redis, raw Celery 500/s" in lines[1]
    assert "amqp, raw Celery 250/s" in lines[1]
    row = next(line for line in lines if line.split("|")[0].strip() == "8")
    redis_cells, amqp_cells = row.split("|")[1:]
    assert redis_cells.split() == ["1,000", "2.00x", "50,000", "100.00x"]
    assert amqp_cells.split() == ["1,000", "4.00x", "-", "-"]  # same rate, half the raw rate; no batched run


def test_brokers_option_takes_a_list_and_refuses_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse(["--brokers", "redis, amqp"]).brokers == ["redis", "amqp"]
    assert parse([]).brokers == ["redis"]
    with pytest.raises(SystemExit):
        parse(["--brokers", "redis,sqs"])
    assert "unknown sqs" in capsys.readouterr().err


def test_the_rabbitmq_queue_of_a_run_is_deleted_afterwards(amqp_url: str) -> None:
    workers = Workers(1, 1, broker_url=amqp_url, queue=f"bench-test-{uuid.uuid4().hex[:8]}")
    with Connection(amqp_url) as connection:
        channel = connection.default_channel
        channel.queue_declare(workers.queue, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"})
        try:
            workers.delete_queue()
            with pytest.raises(NotFound):  # NOT_FOUND on a passive declare: the queue is gone
                connection.channel().queue_declare(workers.queue, passive=True)
        finally:
            connection.channel().queue_delete(workers.queue)
