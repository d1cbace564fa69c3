"""The shared harness's own helpers: stopping a process group, counting overlapping intervals."""

import os
import subprocess
import time

import pytest

from ct_assets_tests.harness.processes import stop_process_group
from ct_assets_tests.harness.runs import max_overlap


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stop_process_group_stops_the_leader_and_its_children() -> None:
    # The leader waits on a child in the same group, as the daemon does on its code servers.
    leader = subprocess.Popen(["sh", "-c", "sleep 300 & wait"], start_new_session=True)
    time.sleep(0.2)
    assert _group_alive(leader.pid)
    stop_process_group(leader)
    assert leader.returncode is not None and not _group_alive(leader.pid)


def test_stop_process_group_of_an_exited_process_returns() -> None:
    leader = subprocess.Popen(["true"], start_new_session=True)
    leader.wait()
    stop_process_group(leader)
    assert leader.returncode == 0


@pytest.mark.parametrize(("intervals", "peak"), [
    ([], 0),
    ([(0.0, 1.0)], 1),
    ([(0.0, 1.0), (1.0, 2.0)], 1),  # [start, end): one ending as the next starts is not an overlap
    ([(0.0, 3.0), (1.0, 2.0), (1.5, 4.0)], 3),
    ([(0.0, 1.0), (2.0, 3.0), (2.5, 5.0), (0.5, 2.2)], 2),
])
def test_max_overlap_counts_intervals_open_at_one_instant(intervals: list[tuple[float, float]], peak: int) -> None:
    assert max_overlap(intervals) == peak
