"""get_storage chooses the backend; parse_s3_uri splits S3 URIs as AWS writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmap.errors import ConfigurationError
from dmap.storage import get_storage, parse_s3_uri
from dmap.storage.local import LocalStorage
from dmap.storage.s3 import S3Storage


def test_dmap_s3_root_or_an_argument_selects_local_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMAP_S3_ROOT", str(tmp_path))
    storage = get_storage()
    assert isinstance(storage, LocalStorage) and storage.root == tmp_path
    other = tmp_path / "other"
    chosen = get_storage(str(other))
    assert isinstance(chosen, LocalStorage) and chosen.root == other


def test_without_a_root_storage_is_s3(s3_env: str) -> None:
    assert isinstance(get_storage(), S3Storage)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/key/with/slashes.csv", ("bucket", "key/with/slashes.csv")),
        ("S3://bucket/k", ("bucket", "k")),
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/", ("bucket", "")),
    ],
)
def test_s3_uris_split_into_bucket_and_key(uri: str, expected: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize("uri", ["bucket/key", "https://bucket/key", "s3:///key", ""])
def test_other_strings_are_not_s3_uris(uri: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_s3_uri(uri)
