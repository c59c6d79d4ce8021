"""The Celery app of dmap workers, configured from ``dmap.config`` (DMAP_* environment).

Settings follow DESIGN §6 and the Celery/Redis research: JSON only (never pickle), no result
backend (the run store records results), prefetch 1, early acks — leases, not ``acks_late`` plus a
visibility timeout, own recovery, so the visibility timeout is set above the longest queue wait.
Start a worker with ``dmap worker`` or ``celery -A workers.app worker -Q dmap``.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import parse_qs, urlsplit

from celery import Celery

from dmap.config import Settings, get_settings
from dmap.outage import publish_retry_policy


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app for dmap children on the broker of ``settings``."""
    settings = settings or get_settings()
    app = Celery("dmap", broker=settings.effective_broker_url, include=["workers.tasks", "workers.announce"])
    transport: dict[str, Any] = {
        "visibility_timeout": int(settings.dispatch_lease_seconds) + 3600,
        "socket_timeout": 30,
        "socket_connect_timeout": 5,
        "health_check_interval": 25,
    }
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        # Fetch only when a pool process is free (Celery >= 5.6, Redis): a worker killed with SIGKILL
        # must not take a reserved child with it (it would wait DMAP_DISPATCH_LEASE_SECONDS).
        worker_disable_prefetch=True,
        task_reject_on_worker_lost=False,
        task_default_queue=settings.queue,
        broker_transport_options=transport,
        broker_use_ssl=broker_ssl(settings.effective_broker_url),
        broker_connection_retry_on_startup=True,
        # A broker restart while children are sent is ridden out as long as a Redis outage is.
        task_publish_retry_policy=publish_retry_policy(settings.redis_outage_seconds),
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        worker_max_tasks_per_child=10_000,
        imports=settings.import_list,
    )
    if urlsplit(settings.effective_broker_url).scheme.startswith(("amqp", "pyamqp")):
        app.conf.update(amqp_options())
    return app


def amqp_options() -> dict[str, Any]:
    """Settings for a RabbitMQ broker: quorum queues (replicated, durable) without global QoS.

    Every queue Celery declares for dmap — the one of ``-Q`` and any a task is sent to — is a quorum
    queue (``x-queue-type: quorum``; Celery detects it and applies prefetch per consumer, as quorum
    queues require). A message is acknowledged only when a pool process accepts it (early acks), so one
    fetched by a worker that dies first is redelivered by RabbitMQ when its channel closes.
    """
    return {
        "task_default_queue_type": "quorum",
        "task_create_missing_queue_type": "quorum",
        "worker_detect_quorum_queues": True,
        "broker_transport_options": {"confirm_publish": True},
        "worker_disable_prefetch": False,  # a Redis-only setting; RabbitMQ redelivers what a dead worker held
    }


def broker_ssl(url: str) -> dict[str, Any] | None:
    """TLS options for a ``rediss://`` broker whose URL names none: verify the certificate, as redis-py does.

    kombu falls back to ``CERT_NONE`` (with a warning) for a bare ``rediss://`` URL, so the worker would
    send the password to a server it never verified; URL options (``?ssl_cert_reqs=...``) still win.
    """
    parts = urlsplit(url)
    if parts.scheme != "rediss" or any(name.startswith("ssl_") for name in parse_qs(parts.query)):
        return None
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED}


app = create_app()
"""The app ``celery -A workers.app`` and ``dmap worker`` use."""
