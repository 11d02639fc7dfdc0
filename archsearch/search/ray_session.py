"""Start (or join) Ray the way this project needs it: small, quiet, no dashboard.

Quiet by default: Ray's start-up messages, its workers' output and its notice that it turned
token authentication on (printed on every local start, though nothing is asked of the user) do
not reach the terminal. ``--verbose`` on ``run`` and ``confirm``, or ``ARCHSEARCH_VERBOSE=1``,
lets them through. Token authentication itself stays as Ray sets it up.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from archsearch.errors import InputError

VERBOSE_ENV = "ARCHSEARCH_VERBOSE"
# Where Ray logs "Token authentication is enabled for this Ray cluster..." (Ray 2.5x-2.6x).
_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


def verbose() -> bool:
    """Whether the user asked to see Ray's own messages (``--verbose``/ARCHSEARCH_VERBOSE)."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def set_verbose(on: bool) -> None:
    """``--verbose``: through the environment, so that Ray workers would see it too."""
    if on:
        os.environ[VERBOSE_ENV] = "1"


@contextlib.contextmanager
def _quiet_auth_notice() -> Iterator[None]:
    """Hold back Ray's token-authentication notices while it starts or joins (unless verbose).

    Errors still pass: a cluster that refuses the token is reported by ``join_cluster``.
    """
    if verbose():
        yield
        return
    logger = logging.getLogger(_AUTH_LOGGER)
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


def quiet_ray_environment() -> None:
    """Settings that must be in place before Ray and Tune start.

    No usage stats, no extra loggers, and no Tune SIGINT handler: the driver handles Ctrl-C
    itself (see stopping.py) so that it knows the search was interrupted.
    ``TUNE_MAX_PENDING_TRIALS_PG`` is left to Tune: with the driver's ConcurrencyLimiter it
    stages one trial per worker; 1 (as once set here) starts trials one after the other, and
    two workers trained no faster than one (benchmarks/search_throughput.py).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"


def ensure_ray(address: str | None, num_cpus: int) -> bool:
    """Connect to ``address`` or start a fresh local instance; returns True if we started it.

    ``address=None`` means a new local instance (``address="local"``): plain ``ray.init()``
    would silently attach to any cluster left running on the machine (or named by
    ``RAY_ADDRESS``), e.g. the leftovers of a driver killed with SIGKILL.
    """
    quiet_ray_environment()
    import ray

    if ray.is_initialized():
        return False
    loud = verbose()
    common = {"logging_level": logging.INFO if loud else logging.WARNING, "log_to_driver": loud}
    if address:
        join_cluster(address, **common)
        return False
    with _quiet_auth_notice():
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            object_store_memory=256 * 1024 * 1024,
            **common,
        )
    return True


def join_cluster(address: str, **settings: object) -> None:
    """Connect to an existing cluster; a wrong address or missing credentials is an input error.

    ``ray start --head`` turns token authentication on, and Ray clients only send the token
    when ``RAY_AUTH_MODE=token``: when the user has not chosen a mode and a token is at hand,
    send it (a cluster without authentication accepts it too).
    """
    import ray

    try:
        with _quiet_auth_notice():
            _send_token_if_available()
            ray.init(address=address, **settings)
    except Exception as exc:  # ConnectionError, AuthenticationError, RuntimeError, ValueError
        lines = str(exc).strip().splitlines()
        detail = lines[-1] if lines else type(exc).__name__
        hint = ""
        if "auth" in str(exc).lower():
            hint = (
                " (token authentication: put the cluster's token in ~/.ray/auth_token or "
                "RAY_AUTH_TOKEN and set RAY_AUTH_MODE=token)"
            )
        raise InputError(
            f"cannot join the Ray cluster at {address}: {detail}{hint}", key="--address"
        ) from None


def _send_token_if_available() -> None:
    """RAY_AUTH_MODE=token when unset and a token exists (Ray's own rule for local clusters).

    Ray caches its configuration at import, so the helper that refreshes it is used; an older
    or newer Ray without it gets the environment variable, read by its next import.
    """
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # pragma: no cover - depends on the Ray version
        path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
        if os.environ.get("RAY_AUTH_TOKEN") or os.path.isfile(path):
            os.environ.setdefault("RAY_AUTH_MODE", "token")
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def cluster_address() -> str | None:
    """The GCS address of the Ray cluster this process is connected to (None if none)."""
    import ray

    if not ray.is_initialized():
        return None
    return ray.get_runtime_context().gcs_address
