"""Process lifetime: the server stops on SIGTERM / SIGINT, and every process it starts dies with it."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time


# ------------------------------------------------------------------------------------------- processes
def die_with_parent(parent_pid: int) -> None:
    """Makes this process exit when its parent does, even by SIGKILL, which no cleanup code sees."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1)
    os._exit(1)


def _remember_forking_pid() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _forked_child_setup() -> None:
    # the child stops when the parent tells it (uvicorn, which handles its own signals, and the queue
    # manager); a signal to the whole group must not stop it before requests in flight are answered
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    die_with_parent(_forking_pid)


def stop_on_signals() -> None:
    """SIGTERM (systemd, Docker, Kubernetes) and SIGINT stop the server as Ctrl+C does; a second one, as
    the default does. Python leaves SIGTERM fatal and SIGINT ignored in a background job, where LitServe's
    clean-up never ran, leaving its processes serving on the port."""

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    os.register_at_fork(before=_remember_forking_pid, after_in_child=_forked_child_setup)
