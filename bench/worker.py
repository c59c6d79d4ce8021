"""``python -m bench.worker POOL CONCURRENCY [--disable-prefetch]``: ``dmap worker`` with Celery overrides.

The benchmark's way to measure a worker setting before it lands in ``workers/app.py``; it builds
the same app as ``dmap worker`` (``workers.app.create_app``) and starts it the same way.
"""

from __future__ import annotations

import argparse
import os

from dmap.config import get_settings
from workers.app import create_app


def main() -> None:
    """Start one worker on ``DMAP_QUEUE``."""
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("pool")
    parser.add_argument("concurrency", type=int)
    parser.add_argument("--disable-prefetch", action="store_true", help="Celery's worker_disable_prefetch")
    args = parser.parse_args()
    settings = get_settings()
    app = create_app(settings)
    if args.disable_prefetch:
        app.conf.worker_disable_prefetch = True
    argv = ["worker", "-Q", settings.queue, "-P", args.pool, "-c", str(args.concurrency)]
    # A unique node name, as ``dmap worker`` takes: on RabbitMQ, workers sharing one would fight over
    # one pidbox queue (RESOURCE_LOCKED).
    argv += ["-n", f"dmap-{os.getpid()}@%h"]
    app.worker_main([*argv, "--loglevel=WARNING", "--without-gossip", "--without-mingle"])


if __name__ == "__main__":
    main()
