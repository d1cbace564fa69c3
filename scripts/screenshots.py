"""Screenshots of the running Dagster UI, taken by Debian's headless Chromium.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--workdir DIR] [--timeout 900]
                                            [--days 4] [--scenario TIMELINE]

Lands a few simulated days (the last one with new sensor hardware, so its drift report has
something to show) into a fresh data folder, starts the real `dagster dev` (webserver + daemon) on
127.0.0.1 and a free port, waits until the pipeline has materialized that day's drift report, then
opens the global asset lineage and the drift report's materialization in Chromium and saves
``lineage.png`` and ``drift_report.png``.

Chromium is Debian's (`apt-get install chromium`, done here when missing and running as root);
Playwright drives it through ``executable_path`` and never downloads a browser. Exit status 3:
no Chromium can be had on this machine.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ct_assets_tests.harness.processes import stop_process_group

if TYPE_CHECKING:
    from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# As root in a closed network: no sandbox, no GPU, and none of Chromium's own network chatter.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DAYS = 4
SCENARIO = "stable@0,sensor_hardware_change@3"  # the last landed day drifts globally
CANNOT_RUN = 3


def ensure_chromium() -> str:
    """Path of Debian's chromium, installing it with apt-get when missing (root only)."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise SystemExit(_cannot("Chromium is not installed and apt-get (as root) is not available to install it"))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("installing Debian's chromium (apt-get)", flush=True)
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=120",
                     "chromium", "chromium-driver"]):
        try:
            subprocess.run(command, env=env, check=True, timeout=900, stdout=subprocess.DEVNULL)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            raise SystemExit(_cannot(f"apt-get could not install chromium: {error}")) from error
    if not Path(CHROMIUM).exists():
        raise SystemExit(_cannot(f"chromium installed but {CHROMIUM} is missing"))
    return CHROMIUM


def _cannot(reason: str) -> int:
    print(f"screenshots: {reason}", file=sys.stderr)
    return CANNOT_RUN


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, deadline: float, process: subprocess.Popen) -> None:
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with status {process.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer in time")
        time.sleep(1)


def wait_for_materialization(dagster_home: Path, asset: str, partition: str, deadline: float,
                             process: subprocess.Popen) -> None:
    """Poll the instance until ``asset`` has a materialization of ``partition``."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        key = dg.AssetKey(asset)
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"dagster dev exited with status {process.returncode}")
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1).records
            if records:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{asset} for {partition} was not materialized in time")
            time.sleep(3)


# Union of the asset nodes' boxes and the free drawing area (below the toolbar, left of the zoom buttons).
GRAPH_BOUNDS_JS = """(top) => {
  const boxes = [...document.querySelectorAll('svg foreignObject')].map(f => f.getBoundingClientRect());
  return {left: Math.min(...boxes.map(b => b.left)), right: Math.max(...boxes.map(b => b.right)),
          top: Math.min(...boxes.map(b => b.top)), bottom: Math.max(...boxes.map(b => b.bottom)),
          canvas: {left: 80, right: innerWidth - 70, top: top, bottom: innerHeight - 10}};
}"""
# The tallest scrolling panel of the page: the asset events view scrolls inside the page, not the page.
SCROLL_HEIGHT_JS = """() => Math.max(document.body.scrollHeight, ...[...document.querySelectorAll('*')]
  .filter(e => e.scrollHeight > e.clientHeight && getComputedStyle(e).overflowY !== 'visible')
  .map(e => e.scrollHeight))"""


def _expand_all_groups(page: "Page", asset: str) -> None:
    """The global lineage starts with every group collapsed; its shortcut Alt+E expands them all."""
    node = page.get_by_text(asset, exact=True)
    for _ in range(3):
        if node.count():
            return
        page.keyboard.press("Alt+KeyE")
        page.wait_for_timeout(2000)
    node.first.wait_for(state="visible")


def _fit_graph(page: "Page") -> None:
    """Zoom out until every asset node fits the drawing area, then pan the graph to its centre."""
    search = page.get_by_text("Search and filter assets").first
    box = search.bounding_box() if search.count() else None
    top = (box["y"] + box["height"] + 40) if box else 140  # below the toolbar, + room for group headers
    for _ in range(40):  # Ctrl + wheel zooms in small steps (the zoom-out button's steps are coarse)
        bounds = page.evaluate(GRAPH_BOUNDS_JS, top)
        canvas = bounds["canvas"]
        if (bounds["right"] - bounds["left"] <= canvas["right"] - canvas["left"] - 40
                and bounds["bottom"] - bounds["top"] <= canvas["bottom"] - canvas["top"] - 40):
            break
        page.mouse.move((canvas["left"] + canvas["right"]) / 2, (canvas["top"] + canvas["bottom"]) / 2)
        page.keyboard.down("Control")
        page.mouse.wheel(0, 25)
        page.keyboard.up("Control")
        page.wait_for_timeout(200)
    for _ in range(10):  # the wheel pans the viewport; converge on the centre
        bounds = page.evaluate(GRAPH_BOUNDS_JS, top)
        canvas = bounds["canvas"]
        dx = (bounds["left"] + bounds["right"] - canvas["left"] - canvas["right"]) / 2
        dy = (bounds["top"] + bounds["bottom"] - canvas["top"] - canvas["bottom"]) / 2
        if abs(dx) < 8 and abs(dy) < 8:
            break
        page.mouse.move((canvas["left"] + canvas["right"]) / 2, (canvas["top"] + canvas["bottom"]) / 2)
        page.mouse.wheel(dx, dy)
        page.wait_for_timeout(400)
    page.mouse.move(5, page.viewport_size["height"] - 5)  # no hover highlight in the picture


def take_screenshots(chromium: str, base_url: str, partition: str, out_dir: Path, profile_dir: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    lineage, drift = out_dir / "lineage.png", out_dir / "drift_report.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(profile_dir), executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1600, "height": 1000}, device_scale_factor=1)
        try:
            page = browser.new_page()
            page.set_default_timeout(90_000)
            try:
                # Assets -> global asset lineage: every group expanded, the whole graph in view.
                page.goto(f"{base_url}/asset-groups", wait_until="domcontentloaded")
                page.locator("svg foreignObject").first.wait_for()
                page.wait_for_timeout(2000)
                _expand_all_groups(page, "drift_report")
                page.get_by_text("production_model", exact=True).first.wait_for(state="visible")
                page.get_by_text("Hide navigation").click()
                page.locator('button:has([aria-label="panel_show_right"])').click()  # the group list
                page.wait_for_timeout(1000)
                _fit_graph(page)
                page.wait_for_timeout(2000)  # status badges and edges settle
                page.screenshot(path=str(lineage))
                # The drift report's materialization of the drifting day, with its metadata; the
                # viewport grows to the panel's height so every metadata row is in the picture.
                page.goto(f"{base_url}/assets/drift_report?view=events&partition={partition}",
                          wait_until="domcontentloaded")
                page.get_by_text("severity_level", exact=True).first.wait_for(state="visible")
                page.get_by_text("drifted_features", exact=True).first.wait_for(state="visible")
                page.wait_for_timeout(2000)
                height = min(int(page.evaluate(SCROLL_HEIGHT_JS)) + 200, 4000)
                page.set_viewport_size({"width": 1600, "height": max(height, 1000)})
                page.wait_for_timeout(1500)
                page.screenshot(path=str(drift))
            except Exception:
                # What the browser showed when it gave up, for whoever reads the failure.
                page.screenshot(path=str(out_dir / "failed.png"), full_page=True)
                raise
        finally:
            browser.close()
    return [lineage, drift]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--workdir", type=Path, help="data, DAGSTER_HOME and browser profile (default: a temp dir)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the pipeline")
    parser.add_argument("--days", type=int, default=DAYS, help="simulated days to land; the last one is shown")
    parser.add_argument("--scenario", default=SCENARIO, help="scenario timeline of the simulated days")
    args = parser.parse_args(argv)

    chromium = ensure_chromium()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ct-screenshots-"))
    data_dir, dagster_home = workdir / "data", workdir / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    # The project's instance config, without the UI's first-visit newsletter dialog.
    instance_config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    instance_config["nux"] = {"enabled": False}
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance_config, sort_keys=False))
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "CT_DATA_DIR": str(data_dir),
           "CT_DUCKDB_PATH": str(data_dir / "warehouse.duckdb")}
    python = sys.executable
    subprocess.run([python, "-m", "ct_assets.cli", "simulate", "--days", str(args.days), "--scenario", args.scenario],
                   env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, timeout=300)
    partition = max(p.name for p in (data_dir / "landing").iterdir() if p.is_dir())

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with (workdir / "dagster_dev.log").open("w") as log:
        dev = subprocess.Popen([str(Path(python).with_name("dagster")), "dev", "-h", "127.0.0.1", "-p", str(port),
                                "-w", str(ROOT / "workspace.yaml")],
                               env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = started + args.timeout
        wait_for_http(f"{base_url}/server_info", deadline, dev)
        wait_for_materialization(dagster_home, "drift_report", partition, deadline, dev)
        print(f"pipeline reached drift_report {partition} after {time.monotonic() - started:.0f} s", flush=True)
        paths = take_screenshots(chromium, base_url, partition, args.out, workdir / "chromium-profile")
    finally:
        stop_process_group(dev)
    for path in paths:
        print(f"saved {path} ({path.stat().st_size} bytes)")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
