#!/usr/bin/env bash
# Build every image of docker-compose.yml on a machine that cannot pull from a registry.
#
#   deploy/local-images.sh
#   COMPOSE_FILE=docker-compose.yml:deploy/compose.local.yml docker compose up demo
#
# What it builds (each step is skipped when its result is already in Docker or the cache):
#   dmap-debian:bookworm  debootstrap bookworm minbase + python3, python3-venv, redis-server, imported
#   dmap-wheels:local     that base + every wheel needed, built on the host with `pip wheel` (pip in
#                         a build cannot verify the index's certificates; the host can)
#   dmap:local            the project's Dockerfile, unchanged but for its base images (build args)
#   dmap-redis:local      Redis from Debian's package (for redis:7.4-alpine)
#   dmap-tools:local      moto's S3 server (for MinIO) and Flower from PyPI (for mher/flower)
#
# Needs: a running dockerd, debootstrap (Debian package), Python 3.11 with pip ($PYTHON, default
# `python`: the project's venv), network access to a Debian mirror and a package index. Wheels are
# cached in ${DMAP_IMAGE_CACHE:-~/.cache/dmap-images}, keyed by pyproject.toml's dependency lists.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${DMAP_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dmap-images}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PYTHON=${PYTHON:-python}
BASE=dmap-debian:bookworm
export DOCKER_BUILDKIT=0 # the classic builder: BuildKit here would try to pull its frontend image
say() { printf '[local-images %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
# docker build, quiet unless it fails (then its last lines, not the legacy builder's banner).
build() {
  local log
  log=$(mktemp)
  docker build "$@" >"$log" 2>&1 || { tail -30 "$log" >&2; rm -f "$log"; exit 1; }
  rm -f "$log"
}

docker info >/dev/null 2>&1 || { say "dockerd is not answering (start it: dockerd --iptables=false)"; exit 1; }
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || { say "$PYTHON is not Python 3.11 (Debian bookworm's): its wheels would not fit the images"; exit 1; }

# -- 1. the base: a Debian root filesystem made by debootstrap, imported as an image --------------
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { say "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }
  rootfs=$(mktemp -d /var/tmp/dmap-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  say "debootstrap bookworm into $rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,redis-server \
    bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs.log"
  say "importing $BASE"
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$BASE" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi

# -- 2. wheels, built on the host, baked into the build stage's base --------------------------------
moto_version=$("$PYTHON" -c 'from importlib.metadata import version; print(version("moto"))' 2>/dev/null || echo 5.2.6)
# async-timeout: redis-py needs it below Python 3.11.3 (bookworm has 3.11.2), which the host
# interpreter, a later 3.11, would not fetch for itself.
requirements=(".[parquet,metrics]" hatchling "async-timeout>=4.0.3" "moto[server,s3]==$moto_version" "flower==2.0.1")
# The key: what decides the wheel set (dependencies, not the rest of pyproject.toml), so editing
# pytest or ruff settings does not rebuild every image.
deps=$("$PYTHON" -c 'import json, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]
print(json.dumps([p["dependencies"], p["optional-dependencies"]], sort_keys=True))')
key=$(printf '%s\n' "$deps" "${requirements[*]}" | cat - deploy/local/Dockerfile.wheels | sha256sum | cut -c1-16)
wheels="$CACHE/wheels-$key"
if [ "$(docker image inspect -f '{{index .Config.Labels "dmap.wheels"}}' dmap-wheels:local 2>/dev/null)" != "$key" ]; then
  if [ ! -f "$wheels/.complete" ]; then
    say "pip wheel into $wheels"
    rm -rf "$wheels" && mkdir -p "$wheels"
    "$PYTHON" -m pip wheel -q --wheel-dir "$wheels" "${requirements[@]}" >"$wheels.log" 2>&1 \
      || { tail -20 "$wheels.log" >&2; exit 1; }
    rm -f "$wheels"/dmap-*.whl # the Dockerfile builds dmap from its sources
    touch "$wheels/.complete"
  fi
  say "building dmap-wheels:local"
  build -f deploy/local/Dockerfile.wheels --build-arg BASE_IMAGE="$BASE" \
    --label dmap.wheels="$key" -t dmap-wheels:local "$wheels"
fi

# -- 3. the images compose uses, built side by side (Docker's layer cache makes an unchanged
#       rebuild take about a second) --------------------------------------------------------------
say "building dmap:local (Dockerfile, PYTHON_IMAGE=$BASE), dmap-redis:local, dmap-tools:local"
build --build-arg PYTHON_IMAGE="$BASE" --build-arg BUILD_IMAGE=dmap-wheels:local -t dmap:local . &
dmap=$!
build -f deploy/local/Dockerfile.redis --build-arg BASE_IMAGE="$BASE" -t dmap-redis:local deploy/local &
redis=$!
build -f deploy/local/Dockerfile.tools --build-arg BASE_IMAGE="$BASE" --build-arg BUILD_IMAGE=dmap-wheels:local \
  --build-arg MOTO_VERSION="$moto_version" -t dmap-tools:local deploy/local &
tools=$!
failed=0
for job in "$dmap" "$redis" "$tools"; do wait "$job" || failed=1; done
[ "$failed" = 0 ] || { say "an image failed to build (output above)"; exit 1; }
say "images ready: dmap:local dmap-redis:local dmap-tools:local"
