#!/bin/sh
# What the official redis image's entrypoint does for a bare `redis-server ...` command: turn off
# protected mode (no password is set, and only the compose network can reach the port), unless the
# command sets it itself. Without this Redis refuses every client that is not on loopback.
set -e
if [ "$1" = "redis-server" ]; then
  case " $* " in
    *" --protected-mode "*) ;;
    *) set -- "$@" --protected-mode no ;;
  esac
fi
exec "$@"
