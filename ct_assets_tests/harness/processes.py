"""Stopping a process group: a daemon or `dagster dev` with its code servers and run workers.

Started with ``start_new_session=True``, such a process leads its own group, so one signal reaches
every process it spawned; tests, benchmarks and scripts/screenshots.py stop theirs with
:func:`stop_process_group`.
"""

import os
import signal
import subprocess
import time


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM ``process``'s group (daemon, code servers, run workers), then SIGKILL whatever is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    for _ in range(20):  # code servers and run workers exit shortly after the daemon
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
