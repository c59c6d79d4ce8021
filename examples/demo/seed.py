"""Create the demo's buckets and upload its orders (``python -m examples.demo.seed``).

Talks to S3 through boto3's own environment (``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``...), so
the same command seeds MinIO in Kubernetes (an init container of the demo coordinator Job), moto in
``scripts/demo_local.py``, or a real bucket. Idempotent: existing buckets are kept and the object is
overwritten. The compose file seeds MinIO with ``mc`` instead (same buckets, same key).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

INPUT_BUCKET = "dmap-demo"
RESULTS_BUCKET = "dmap-results"
ORDERS_KEY = "input/orders.jsonl"
ORDERS_FILE = Path(__file__).with_name("data") / "orders.jsonl"
MANIFEST_URI = f"s3://{INPUT_BUCKET}/{ORDERS_KEY}"
"""What the demo passes as ``--manifest``."""


def s3_client() -> Any:
    """A boto3 S3 client configured only by boto3's own environment variables."""
    import boto3

    return boto3.client("s3")


def seed(client: Any, *, wait_seconds: float = 0.0) -> None:
    """Create both buckets (if absent) and upload the orders to ``s3://dmap-demo/input/orders.jsonl``.

    Args:
        client: A boto3 S3 client.
        wait_seconds: Keep retrying a connection failure this long (the endpoint may still be starting).

    Raises:
        botocore.exceptions.EndpointConnectionError: S3 did not answer within ``wait_seconds``.
    """
    from botocore.exceptions import ClientError, EndpointConnectionError

    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
            break
        except EndpointConnectionError:
            if time.monotonic() >= deadline:
                raise
            logger.info("S3 is not answering yet; retrying")
            time.sleep(1.0)
    for bucket in (INPUT_BUCKET, RESULTS_BUCKET):
        if bucket not in existing:
            try:
                client.create_bucket(Bucket=bucket)
            except ClientError as exc:  # a concurrent seeder created it first
                if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
    client.upload_file(str(ORDERS_FILE), INPUT_BUCKET, ORDERS_KEY)
    logger.info("seeded %s and bucket %s", MANIFEST_URI, RESULTS_BUCKET)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: ``python -m examples.demo.seed [--wait SECONDS]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait", type=float, default=60.0, help="Seconds to wait for S3 to answer.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    seed(s3_client(), wait_seconds=args.wait)


if __name__ == "__main__":
    main()
