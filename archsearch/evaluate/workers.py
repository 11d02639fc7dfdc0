"""Worker processes that end with the process that started them.

``archsearch fidelity --workers N`` trains in a pool of spawned processes. Ctrl-C in a terminal
reaches the whole process group, but a SIGTERM sent to the command alone (``kill``, ``timeout``,
a batch scheduler) ends only the parent: its workers would go on training for up to twenty
minutes, taking the CPU from whatever runs next, and nothing would read their results. On
Linux each worker asks the kernel for a SIGTERM when its parent dies (``PR_SET_PDEATHSIG``);
the work already finished is in the journal, and the next run resumes from there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid: int) -> bool:
    """Ask for SIGTERM when the parent ends; True if the kernel took the request (Linux).

    Called in the worker, with the pid its parent had when it started the pool: if the parent
    already died before the request was made, the worker ends at once.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return False
    if os.getppid() != parent_pid:  # the parent went before the request was in place
        os.kill(os.getpid(), signal.SIGTERM)
    return True


def start_torch_worker(parent_pid: int) -> None:
    """A pool worker's initializer: one torch thread, and the worker ends with its parent."""
    import torch

    die_with_parent(parent_pid)
    torch.set_num_threads(1)


def torch_pool(workers: int) -> ProcessPoolExecutor:
    """``workers`` spawned processes of one torch thread each, ending with this process (fork
    after torch threads start is unsafe)."""
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=start_torch_worker,
        initargs=(os.getpid(),),
    )
