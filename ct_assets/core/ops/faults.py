"""Fault-injection pause points: named places where a crash test can kill the process.

``pause_point(name)`` is a no-op unless the environment variable ``CT_FAULT_PAUSE_AT`` equals
``name``; then it writes a marker file (path from ``CT_FAULT_MARKER``) and sleeps forever, so a
test that started the operation in a subprocess can wait for the marker and SIGKILL the process
exactly there. The points sit where a crash hurts most: inside open transactions, between writing
a file and publishing it.

Example (in a test)::

    env = {**os.environ, "CT_FAULT_PAUSE_AT": INGEST_BEFORE_COMMIT, "CT_FAULT_MARKER": str(marker)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    # wait until marker exists, then os.kill(proc.pid, signal.SIGKILL)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_AT_ENV = "CT_FAULT_PAUSE_AT"
MARKER_ENV = "CT_FAULT_MARKER"

# Every pause point in the code base (tests iterate over these).
INGEST_BEFORE_COMMIT = "ingest.before_commit"  # day's old rows deleted, new ones inserted, not committed
CANDIDATE_TRAINED = "candidate.trained"  # model trained, nothing stored or registered
ARTIFACT_WEIGHTS_WRITTEN = "artifact.weights_written"  # weights in the temp dir, manifest not yet
PROMOTE_INSIDE_SWAP = "promote.inside_swap"  # pointer moved inside the transaction, not committed
SNAPSHOT_BEFORE_RENAME = "snapshot.before_rename"  # temp snapshot complete, not yet renamed into place
DECISION_WRITTEN = "decision.written"  # decision row stored, not yet returned to the caller
PAUSE_POINTS: tuple[str, ...] = (
    INGEST_BEFORE_COMMIT, CANDIDATE_TRAINED, ARTIFACT_WEIGHTS_WRITTEN, PROMOTE_INSIDE_SWAP,
    SNAPSHOT_BEFORE_RENAME, DECISION_WRITTEN,
)


def pause_point(name: str) -> None:
    """Pause here forever when ``CT_FAULT_PAUSE_AT == name`` (after writing the marker); else return."""
    if os.environ.get(PAUSE_AT_ENV) != name:
        return
    marker = os.environ.get(MARKER_ENV)
    if not marker:
        raise ValueError(f"{PAUSE_AT_ENV}={name!r} is set but {MARKER_ENV} (the marker file path) is not")
    Path(marker).write_text(f"{name} {os.getpid()}\n")
    while True:
        time.sleep(3600)
