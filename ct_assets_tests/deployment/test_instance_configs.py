"""The deployment configs agree with each other and with Dagster's schema (no server needed)."""

import shutil
from pathlib import Path

import yaml
from dagster._core.instance.config import dagster_instance_config

from ct_assets_tests.deployment.conftest import ROOT


def _load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def test_postgres_instance_config_validates_against_dagsters_schema(tmp_path: Path) -> None:
    shutil.copyfile(ROOT / "dagster.postgres.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))  # raises DagsterInvalidConfigError on a bad key
    database = config["storage"]["postgres"]["postgres_db"]
    assert database["scheme"] == "postgresql+psycopg2"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    # No credential is written in the file: every connection field is an `env:` reference
    # (the end-to-end test resolves them against a real server).
    assert {field: database[field] for field in ("hostname", "port", "username", "password", "db_name")} == {
        "hostname": {"env": "CT_PG_HOST"}, "port": {"env": "CT_PG_PORT"}, "username": {"env": "CT_PG_USER"},
        "password": {"env": "CT_PG_PASSWORD"}, "db_name": {"env": "CT_PG_DB"}}


def test_postgres_and_helm_configs_keep_the_limits_of_dagster_yaml() -> None:
    sqlite, postgres, helm = _load("dagster.yaml"), _load("dagster.postgres.yaml"), _load("deploy/helm-values.yaml")
    # The DuckDB pool: one warehouse step at a time, everywhere.
    assert postgres["concurrency"]["pools"] == sqlite["concurrency"]["pools"] == {"granularity": "op",
                                                                                  "default_limit": 1}
    assert helm["concurrency"]["pools"] == {"granularity": "op", "defaultLimit": 1}
    runs = postgres["concurrency"]["runs"]
    assert runs == sqlite["concurrency"]["runs"]  # the run limits too, the one-training-run limit among them
    assert runs["tag_concurrency_limits"] == [{"key": "ct/training_run", "value": "true", "limit": 1}]
    assert helm["concurrency"]["runs"] == {"maxConcurrentRuns": runs["max_concurrent_runs"],
                                           "tagConcurrencyLimits": runs["tag_concurrency_limits"]}
    assert helm["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert helm["runLauncher"]["type"] == "K8sRunLauncher"


def test_the_training_run_tag_limited_here_is_the_one_decision_sensor_sets() -> None:
    from ct_assets.defs.tags import TRAINING_RUN_TAG

    for name in ("dagster.yaml", "dagster.postgres.yaml"):
        limits = _load(name)["concurrency"]["runs"]["tag_concurrency_limits"]
        assert {limit["key"] for limit in limits} == {TRAINING_RUN_TAG}, name


def test_the_embedded_instance_config_validates_against_dagsters_schema(tmp_path: Path) -> None:
    shutil.copyfile(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["runs"]["tag_concurrency_limits"][0]["key"] == "ct/training_run"
