"""Settings, read from ``DMAP_*`` environment variables (pydantic-settings).

Only dmap's own knobs live here. S3 endpoints and credentials come from boto3's own variables
(``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ...) so that dmap never needs a private flag.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PAYLOAD_LIMIT = 256 * 1024


class Settings(BaseSettings):
    """dmap's configuration. Every field maps to ``DMAP_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="DMAP_", extra="ignore")

    backend: str = Field("local", description="Default backend: local (embedded) or celery.")
    redis_url: str = Field("redis://localhost:6379/0", description="Redis for run state; rediss:// and passwords work.")
    broker_url: str | None = Field(None, description="Celery broker URL; defaults to redis_url.")
    imports: str = Field("", description="Comma-separated modules that register task handlers (workers import them).")
    payload_limit: int = Field(DEFAULT_PAYLOAD_LIMIT, gt=0, description="Max bytes of a state's input/output.")
    home: str | None = Field(None, description="Where the local backend keeps state machines (default ~/.dmap).")
    s3_root: str | None = Field(None, description="A local folder that stands in for S3 (bucket = sub-folder).")
    queue: str = Field("dmap", description="The Celery queue children are sent to.")
    lease_seconds: float = Field(30.0, gt=0, description="Run lease of a child; renewed by worker heartbeats.")
    dispatch_lease_seconds: float = Field(600.0, gt=0, description="How long a dispatched child may wait in the queue.")
    max_attempts: int = Field(3, ge=1, description="Attempts of a child whose worker dies before it gives up.")
    dispatch_pack: int = Field(
        16, ge=1, le=256, description="Most children one Celery message carries when many permits come at once."
    )
    pack_release_seconds: float = Field(
        1.0,
        ge=0,
        description="A worker gives back the unstarted children of its pack when one child runs longer (0 = never).",
    )
    flow_park_seconds: float = Field(
        1.0,
        ge=0,
        description="A distributed child that must wait longer than this for a rate-limit token gives its worker "
        "slot back and is resumed when the token is near (celery backend, Tasks at the child's top level).",
    )
    retention_days: float = Field(90.0, gt=0, description="How long finished executions and Map Runs are kept.")
    history_max_events: int = Field(
        25_000, ge=2, description="Most history events kept per execution (later ones are dropped, the last kept)."
    )
    history_max_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, description="Most bytes of history events kept per execution."
    )
    integrations: str = Field("", description="Comma-separated service integrations to enable: aws-sdk, s3, http.")
    serve_host: str = Field("127.0.0.1", description="Address `dmap serve` listens on.")
    serve_port: int = Field(8083, ge=0, le=65535, description="Port of `dmap serve` (8083: Step Functions Local's).")
    api_keys: str = Field("", description="Comma-separated access key ids `dmap serve` accepts (empty = any).")
    account_id: str = Field("123456789012", description="The account id in the ARNs `dmap serve` returns.")
    serve_check_shapes: bool = Field(
        False, description="`dmap serve` checks every response against botocore's model and logs mismatches."
    )
    redis_outage_seconds: float = Field(
        60.0,
        ge=0,
        description="How long a running coordinator or worker retries a lost Redis before it hands its work over.",
    )
    metrics_port: int = Field(
        0, ge=0, le=65535, description="Serve Prometheus metrics of this process's Map Runs (0 = off)."
    )

    @property
    def effective_broker_url(self) -> str:
        """The broker URL, defaulting to the Redis URL."""
        return self.broker_url or self.redis_url

    @property
    def api_key_list(self) -> list[str]:
        """``api_keys`` split into access key ids."""
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    @property
    def import_list(self) -> list[str]:
        """``imports`` split into module names."""
        return [m.strip() for m in self.imports.split(",") if m.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def redact(text: str) -> str:
    """Remove passwords from URLs in ``text`` (``redis://user:secret@host`` -> ``redis://user:***@host``)."""
    import re

    pattern = r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@"
    return re.sub(pattern, r"\g<scheme>\g<user>:***@", text)
