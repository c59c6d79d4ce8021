"""The demo of ``docker compose up demo``, ``deploy/k8s/overlays/demo`` and ``scripts/demo_local.sh``."""
