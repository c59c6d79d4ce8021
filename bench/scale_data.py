"""The scale benchmark's data: big JSONL and CSV manifests on disk and in moto S3 (``python -m bench.scale``).

This module owns generating the manifests once (streamed to disk, published by a rename so a file
that exists is complete, and reused by later runs), checking the disk first, and serving them from
a :class:`moto.server.ThreadedMotoServer` in this process. It measures nothing.

Every item is one object of a realistic inventory: ``{"id": 7, "key": "objects/00000007.bin",
"size": 55433}`` in JSONL (about 55 bytes a line), ``7,objects/00000007.bin,55433`` under an
``id,key,size`` header in CSV (about 32 bytes a row).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUCKET = "data"
"""The bucket (a sub-folder of the data root, and a moto bucket) holding the manifests."""
RESULTS = "results"
"""The bucket the ResultWriter writes to."""
CHUNK = 20_000
BYTES_PER_ITEM = {"jsonl": 58, "csv": 35}
"""Upper bounds of a line's size, for the disk check."""


def jsonl_lines(first: int, count: int) -> str:
    """``count`` JSONL lines from item ``first``."""
    return "".join(
        f'{{"id":{i},"key":"objects/{i:08d}.bin","size":{i * 7919 % 100_000}}}\n' for i in range(first, first + count)
    )


def csv_lines(first: int, count: int) -> str:
    """``count`` CSV rows from item ``first`` (the header is written separately)."""
    return "".join(f"{i},objects/{i:08d}.bin,{i * 7919 % 100_000}\n" for i in range(first, first + count))


@dataclass(frozen=True)
class Manifest:
    """One generated manifest: ``items`` items in ``fmt`` (``jsonl`` or ``csv``) at ``<root>/data/<key>``."""

    fmt: str
    items: int
    root: Path

    @property
    def key(self) -> str:
        """Its object key in the ``data`` bucket."""
        return f"items-{self.items}.{self.fmt}"

    @property
    def path(self) -> Path:
        """Its file under the data root (``DMAP_S3_ROOT``)."""
        return self.root / BUCKET / self.key

    @property
    def input_type(self) -> str:
        """Its ``ReaderConfig.InputType``."""
        return self.fmt.upper()

    def ensure(self) -> bool:
        """Write the file unless a complete one exists; True if it was written now."""
        if self.path.is_file():
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".partial")
        lines = jsonl_lines if self.fmt == "jsonl" else csv_lines
        with tmp.open("w", encoding="utf-8", newline="") as out:
            if self.fmt == "csv":
                out.write("id,key,size\n")
            for first in range(0, self.items, CHUNK):
                out.write(lines(first, min(CHUNK, self.items - first)))
        tmp.replace(self.path)
        return True


def check_disk(root: Path, manifests: list[Manifest], results_bytes: int) -> None:
    """Fail early unless the data root's disk holds the manifests still to write, the results and a margin.

    Raises:
        RuntimeError: If there is not enough free space.
    """
    root.mkdir(parents=True, exist_ok=True)
    needed = results_bytes + sum(BYTES_PER_ITEM[m.fmt] * m.items for m in manifests if not m.path.is_file())
    free = shutil.disk_usage(root).free
    if free < 2 * needed + 1024**3:
        raise RuntimeError(f"{root}: {free / 1e9:.1f} GB free; the benchmark needs about {needed / 1e9:.1f} GB")


def folder_bytes(root: Path) -> int:
    """Bytes of every file under ``root``."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@contextmanager
def moto_s3() -> Iterator[dict[str, str]]:
    """moto's S3 over HTTP in this process; yields the environment that points boto3 (and dmap) at it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    try:
        yield env
    finally:
        server.stop()


def s3_client(env: dict[str, str]) -> Any:
    """A boto3 S3 client for the moto endpoint in ``env``."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def upload(env: dict[str, str], manifests: list[Manifest]) -> None:
    """Create the ``data`` and ``results`` buckets in moto and upload the manifests (multipart, streamed)."""
    client = s3_client(env)
    for bucket in (BUCKET, RESULTS):
        client.create_bucket(Bucket=bucket)
    for manifest in manifests:
        client.upload_file(str(manifest.path), BUCKET, manifest.key)


def local_results(root: Path) -> Path:
    """The ``results`` bucket folder under the data root, created empty."""
    folder = root / RESULTS
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def tidy(root: Path) -> None:
    """Remove partial files an interrupted generation left behind."""
    for partial in (root / BUCKET).glob("*.partial") if (root / BUCKET).is_dir() else []:
        os.unlink(partial)
