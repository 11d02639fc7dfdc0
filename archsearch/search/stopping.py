"""How a running search stops early: the ``--timeout``, or Ctrl-C, each ending Tune cleanly.

Tune's own SIGINT handler also ends a run cleanly, but it leaves no trace of why, and trials it
had started are never reported to the searcher. Here the driver disables it
(``TUNE_DISABLE_SIGINT_HANDLER``, see ray_session), stops Tune through a stopper of its own,
knows the reason, and closes the trials Tune left behind (queued again for the next run).
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from ray.tune import Stopper

INTERRUPTED = "interrupted"
TIMEOUT = "timeout"


class SearchStopper(Stopper):
    """Stops the whole experiment once ``interrupt()`` was called or ``deadline`` passed."""

    def __init__(self, deadline: float | None = None):
        self.deadline = deadline  # time.perf_counter() value
        self.reason: str | None = None

    def interrupt(self) -> None:
        self.reason = self.reason or INTERRUPTED

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False  # single trials end by themselves (or by the scheduler)

    def stop_all(self) -> bool:
        deadline = self.deadline
        if self.reason is None and deadline is not None and time.perf_counter() >= deadline:
            self.reason = TIMEOUT
        return self.reason is not None


class GracefulInterrupt:
    """While active: the first Ctrl-C asks ``stopper`` to end the search, a second one aborts.

    Only the main thread can own signal handlers; elsewhere this does nothing.
    """

    def __init__(self, stopper: SearchStopper, console: Any):
        self.stopper = stopper
        self.console = console
        self.previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stopper.reason == INTERRUPTED:
            raise KeyboardInterrupt
        self.stopper.interrupt()
        self.console.print(
            "[yellow]interrupted[/]: closing the running trials, queued for the next run "
            "(Ctrl-C again to quit at once)"
        )

    def __enter__(self) -> GracefulInterrupt:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
