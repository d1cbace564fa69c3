"""A real local PostgreSQL server for the deployment tests (scripts/postgres_up.sh)."""

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_UP = ROOT / "scripts" / "postgres_up.sh"
CANNOT_INSTALL = 3  # postgres_up.sh's exit status when the server cannot be installed here


@dataclass(frozen=True)
class PostgresServer:
    """A throwaway cluster on loopback; ``env`` holds the CT_PG_* variables dagster.postgres.yaml reads."""

    env: dict[str, str]

    def dsn(self) -> str:
        return (f"host={self.env['CT_PG_HOST']} port={self.env['CT_PG_PORT']} user={self.env['CT_PG_USER']} "
                f"password={self.env['CT_PG_PASSWORD']} dbname={self.env['CT_PG_DB']}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    # Under /tmp, not pytest's tmp_path: the server runs as the `postgres` user, which cannot
    # traverse root's 0700 pytest folder.
    cluster_dir = Path(tempfile.mkdtemp(prefix="ct-pg-"))
    try:
        started = subprocess.run([str(POSTGRES_UP), str(cluster_dir)], capture_output=True, text=True,
                                 timeout=1500, check=False)
    except subprocess.TimeoutExpired:
        shutil.rmtree(cluster_dir, ignore_errors=True)
        pytest.fail("scripts/postgres_up.sh did not finish within 25 minutes")
    if started.returncode == CANNOT_INSTALL:
        shutil.rmtree(cluster_dir, ignore_errors=True)
        pytest.skip(f"no PostgreSQL server here: {started.stderr.strip().splitlines()[-1]}")
    if started.returncode != 0:
        shutil.rmtree(cluster_dir, ignore_errors=True)
        pytest.fail(f"scripts/postgres_up.sh failed ({started.returncode}):\n{started.stderr}")
    env = dict(line.split("=", 1) for line in started.stdout.split())
    try:
        yield PostgresServer(env)
    finally:
        subprocess.run([str(POSTGRES_UP), "--stop", str(cluster_dir)], capture_output=True, timeout=60, check=False)
        shutil.rmtree(cluster_dir, ignore_errors=True)
