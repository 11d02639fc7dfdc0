"""Start (or join) Ray the way this project needs it: small, quiet, no dashboard."""

from __future__ import annotations

import logging
import os


def quiet_ray_environment() -> None:
    """Settings that must be in place before Ray starts: no usage stats, no extra loggers."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", "1")


def ensure_ray(address: str | None, num_cpus: int) -> bool:
    """Connect to ``address`` or start a fresh local instance; returns True if we started it.

    ``address=None`` means a new local instance (``address="local"``): plain ``ray.init()``
    would silently attach to any cluster left running on the machine.
    """
    quiet_ray_environment()
    import ray

    if ray.is_initialized():
        return False
    common = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address:
        ray.init(address=address, **common)
        return False
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        object_store_memory=256 * 1024 * 1024,
        **common,
    )
    return True
