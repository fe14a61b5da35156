"""The one way linctl starts a pool of worker processes, so that no worker outlives its run.

Both process pools (``prepare mlm`` and ``prepare wikicorpus``) come from :func:`worker_pool`. Every
worker it starts runs :func:`_start_worker` before the caller's own initializer, which

* asks the kernel to SIGKILL the worker when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``), so a
  ``kill -9`` of the run leaves no worker behind. The request comes after the spawn, so the worker then
  checks ``os.getppid()``: if the parent died first, the worker was already handed to another process
  and exits at once. On other systems there is no such call and this part does nothing; a worker there
  still ends when it next reads its closed task pipe.
* ignores SIGINT: Ctrl-C reaches the whole foreground process group, but only the parent handles it
  (one "interrupted" line) and shuts the pool down; workers printing their own KeyboardInterrupt
  tracebacks would bury that line. A worker's start-up (its imports, before any initializer) is covered
  too: the pool starts workers with SIGINT *blocked* in the starting thread, a mask the child inherits
  through fork and exec, so a Ctrl-C then stays pending in the worker until :func:`_start_worker` has
  set SIGINT to ignored and unblocks it (the pending one is then dropped). The parent loses nothing:
  its other threads take the signal and its main thread raises KeyboardInterrupt as ever.

The kernel ties PR_SET_PDEATHSIG to the *thread* that started the worker; pools here are driven from
the main thread, which lives as long as the process.
"""

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_all_start_methods, get_context
from typing import Any

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def worker_pool(
    workers: int, initializer: Callable[..., Any] | None = None, initargs: tuple = (), *, fork: bool = False
) -> ProcessPoolExecutor:
    """Return a pool of ``workers`` processes that die with their parent and ignore Ctrl-C.

    Spawned by default: a forked child inherits the parent's threads' locks (rich's progress refresh) in
    whatever state they are. ``fork=True`` (where the platform has fork) copies the parent instead, so a
    worker starts in milliseconds with what the parent has loaded rather than importing it again; the
    pool's workers are then started at once, and the caller must create it before starting any thread.
    """
    forked = fork and "fork" in get_all_start_methods()
    pool = _Pool(
        workers,
        mp_context=get_context("fork" if forked else "spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(), forked, initializer, initargs),
    )
    if forked:
        pool.submit(int).result()  # a forking pool starts every worker at its first task
    return pool


class _Pool(ProcessPoolExecutor):
    def submit(self, fn, /, *args, **kwargs):
        # A spawned pool starts its workers in submit(); they inherit this thread's signal mask.
        with _stops_held():
            if not hasattr(signal, "pthread_sigmask"):  # Windows
                return super().submit(fn, *args, **kwargs)
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                return super().submit(fn, *args, **kwargs)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


@contextmanager
def _stops_held() -> Iterator[None]:
    """Hold a Ctrl-C or SIGTERM that comes inside the block until its end, then raise it as it would have.

    A stop raised part-way through starting a worker leaves that worker reading half its start-up data
    (it prints a traceback of its own) or the pool joining a thread it never started. Only the main
    thread sets handlers; elsewhere (and for signals without a Python handler) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    held = {
        signum: handler
        for signum in (signal.SIGINT, signal.SIGTERM)
        if callable(handler := signal.getsignal(signum))
    }
    for signum in held:
        signal.signal(signum, lambda signum, frame: came.append(signum))
    try:
        yield
    finally:
        for signum, handler in held.items():
            signal.signal(signum, handler)
        if came:
            signal.raise_signal(came[0])  # its own handler runs now, in this thread


def _start_worker(parent: int, forked: bool, initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if forked:  # the parent's handler (a stop remembered for the CLI's report) is not the worker's
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by _Pool.submit, for start-up
    die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when ``parent`` dies; exit now if it already has (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # refused (a seccomp sandbox, say): the worker still ends on its closed task pipe
    if os.getppid() != parent:
        os._exit(1)  # the parent died before the request took hold
