"""scripts/screenshots.py against the real `dagster dev` and Debian's headless Chromium."""

import subprocess
import sys
from pathlib import Path

import pytest

from ct_assets_tests.deployment.conftest import ROOT

pytestmark = pytest.mark.deployment

CANNOT_RUN = 3  # the script's exit status when no Chromium can be had here


def test_screenshots_show_the_lineage_graph_and_a_drift_report(tmp_path: Path) -> None:
    pytest.importorskip("playwright", reason="playwright (the test extra) is not installed")
    from PIL import Image

    out = tmp_path / "screenshots"
    # Two days, the second with new sensor hardware: the shortest run that has a drifting day.
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "screenshots.py"), "--out", str(out),
         "--workdir", str(tmp_path / "work"), "--days", "2", "--scenario", "stable@0,sensor_hardware_change@1",
         "--timeout", "600"],
        cwd=ROOT, capture_output=True, text=True, timeout=1500, check=False)
    if result.returncode == CANNOT_RUN:
        pytest.skip(result.stderr.strip().splitlines()[-1])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]

    for name in ("lineage.png", "drift_report.png"):
        path = out / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            width, height = image.size
            # A rendered page, not a blank or error page: full viewport width, many colours.
            colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert width == 1600 and height >= 1000, (name, image.size)
        assert colours is None or len(colours) > 200, (name, len(colours or []))
        assert path.stat().st_size > 30_000, (name, path.stat().st_size)
