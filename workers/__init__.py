"""Celery worker entry points for dmap children (``dmap worker`` or ``celery -A workers.app worker``)."""
