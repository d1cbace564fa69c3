"""`ct backtest --file`: a team's own CSV or Parquet history replayed, stored and printed; bad input rejected."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ct_assets.cli import main
from ct_assets.core.backtest.columns import detect_columns


def drifting_history(n_rows: int = 600, n_days: int = 6, seed: int = 0) -> pd.DataFrame:
    """Orders over ``n_days`` days whose fraud rule flips abruptly halfway; plus an id and a free-text note."""
    rng = np.random.default_rng(seed)
    created = pd.Timestamp("2024-03-01") + pd.to_timedelta(np.sort(rng.uniform(0, n_days, n_rows)), unit="D")
    amount, score = rng.normal(size=n_rows), rng.normal(size=n_rows)
    region = rng.choice(["north", "south", "east"], size=n_rows)
    after = created >= pd.Timestamp("2024-03-01") + pd.Timedelta(days=n_days // 2)
    logit = np.where(after, -2 * amount + score, 2 * amount + score)
    fraud = rng.uniform(size=n_rows) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame({"order_id": np.arange(n_rows) + 1000, "created_at": created, "amount": amount,
                         "score": score, "region": region, "note": [f"order {i}" for i in range(n_rows)],
                         "outcome": np.where(fraud, "fraud", "ok")})


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CT_DATA_DIR", str(tmp_path / "data"))  # where the plots go
    return tmp_path


def backtest(path: Path, *extra: str) -> int:
    return main(["backtest", "--file", str(path), "--timestamp-column", "created_at", "--label-column", "outcome",
                 *extra])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_backtest_detects_columns_runs_and_stores(data_dir: Path, suffix: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = data_dir / f"orders{suffix}"
    table = drifting_history()
    table.to_csv(path, index=False) if suffix == ".csv" else table.to_parquet(path, index=False)
    database = data_dir / "results.duckdb"
    assert backtest(path, "--positive-label", "fraud", "--strategies", "never,always_retrain",
                    "--change-at", "2024-03-04", "--db", str(database)) == 0
    out = capsys.readouterr().out
    assert "600 rows in 6 day batches" in out
    assert "numeric features: amount (detected), score (detected)" in out
    assert "categorical features: region (detected)" in out
    assert "excluded order_id: looks like an id" in out and "excluded note: high-cardinality text" in out
    assert "orders, label delay 0, 6 batches, change points [3]" in out  # the rule flips on day 3
    assert "| always_retrain |" in out and "| never " in out
    with duckdb.connect(str(database), read_only=True) as con:
        runs = con.execute("SELECT stream_name, strategy FROM backtest_runs ORDER BY strategy").fetchall()
        daily = con.execute("SELECT count(*) FROM backtest_daily WHERE strategy = 'never'").fetchone()[0]
    assert runs == [
        ("orders", "always_retrain"), ("orders", "never"), ("orders", "oracle")]
    assert daily == 6 - 2  # every batch after the two warm-up batches
    assert list((data_dir / "data" / "backtest").glob("orders-delay0-*.png"))


def test_file_backtest_with_given_columns_and_row_batches(data_dir: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = data_dir / "orders.csv"
    drifting_history().assign(outcome=lambda t: (t.outcome == "fraud").astype(int)).to_csv(path, index=False)
    assert backtest(path, "--batch-by", "rows", "150", "--numeric", "amount", "--categorical", "",
                    "--warmup-batches", "1", "--strategies", "never", "--db", str(data_dir / "r.duckdb")) == 0
    out = capsys.readouterr().out
    assert "600 rows in 4 batches of 150 rows" in out
    assert "numeric features: amount\n" in out and "categorical features: none" in out
    assert "excluded score: numeric (numbers), but not among the given numeric features" in out
    assert "orders, label delay 0, 4 batches" in out


def test_detection_table() -> None:
    table = pd.DataFrame({
        "ts": pd.date_range("2024-01-01", periods=8, freq="h"),
        "y": [0, 1] * 4,
        "user_id": [5, 3, 8, 1, 9, 2, 7, 4],  # distinct integers
        "day_number": [1, 1, 2, 2, 3, 3, 4, 4],  # a counter
        "count": [1, 3, 1, 2, 3, 1, 2, 2],  # integers that repeat, unordered: a feature
        "price": [1.5, 2.5, 1.5, 3.0, 2.0, 1.0, 2.5, 3.5],
        "plan": ["a", "b", "a", "b", "a", "a", "b", "b"],
        "flag": [True, False] * 4,
        "email": [f"u{i}@x" for i in range(8)],
        "shipped": ["2024-02-01"] * 4 + ["2024-02-02"] * 4,
        "constant": ["x"] * 8,
        "empty": [None] * 8,
        "group": ["g1", "g2"] * 4,
    })
    roles = detect_columns(table, timestamp_column="ts", label_column="y", protected_column="group")
    assert roles.numeric == ("count", "price")
    assert roles.categorical == ("plan", "flag")
    reasons = dict(roles.excluded)
    assert set(reasons) == {"ts", "y", "group", "user_id", "day_number", "email", "shipped", "constant", "empty"}
    assert "distinct integers" in reasons["user_id"] and "monotone" in reasons["day_number"]
    assert "high-cardinality" in reasons["email"] and "date/time" in reasons["shipped"]
    assert "constant" in reasons["constant"] and "empty" in reasons["empty"] and "protected" in reasons["group"]
    given = detect_columns(table, timestamp_column="ts", label_column="y", categorical=("plan",))
    assert given.categorical == ("plan",) and "flag" in dict(given.excluded)
    assert "plan (detected)" not in given.describe() and "count (detected)" in given.describe()
    with pytest.raises(ValueError, match="given two roles"):
        detect_columns(table, timestamp_column="ts", label_column="y", numeric=("price", "y"))
    with pytest.raises(ValueError, match="no model input"):
        detect_columns(table[["ts", "y", "email"]], timestamp_column="ts", label_column="y")


def _write(path: Path, table: pd.DataFrame | str) -> Path:
    path.write_text(table) if isinstance(table, str) else table.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("make", "extra", "message"), [
    (lambda d: d / "missing.csv", (), "no such file"),
    (lambda d: _write(d / "h.csv", drifting_history()), ("--positive-label", "fraud", "--numeric", "amount,nope"),
     r"unknown numeric column\(s\) 'nope'; the table has order_id, created_at"),
    (lambda d: _write(d / "h.csv", drifting_history().rename(columns={"outcome": "result"})), (),
     r"unknown label column\(s\) 'outcome'"),
    (lambda d: _write(d / "h.csv", drifting_history().assign(
        outcome=lambda t: np.where(t.index % 3 == 0, "disputed", t.outcome))), (), "3 values .* give the positive"),
    (lambda d: _write(d / "h.csv", drifting_history().assign(
        created_at=lambda t: t.created_at.astype(str).where(t.index != 5, "soon"))), ("--positive-label", "fraud"),
     "unparseable"),
    (lambda d: _write(d / "h.csv", drifting_history()), ("--positive-label", "fraud", "--batch-by", "week",
                                                         "--warmup-batches", "2"),
     "2 batches, a backtest needs at least 3"),
    (lambda d: _write(d / "h.csv", drifting_history()), ("--positive-label", "fraud", "--change-at", "2030-01-01"),
     "change time '2030-01-01' is after the start of the last batch"),
    (lambda d: _write(d / "h.csv", drifting_history()), ("--positive-label", "fraud", "--batch-by", "rows"),
     "--batch-by takes"),
    (lambda d: _write(d / "h.csv", ""), (), "no data rows"),
    (lambda d: _write(d / "h.csv", drifting_history().head(0)), (), "no data rows"),
    (lambda d: _write(d / "h.parquet", "not parquet"), (), "cannot read h.parquet"),
    (lambda d: _write(d / "h.json", "{}"), (), "unsupported file type '.json'"),
])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], make, extra,
                                         message: str) -> None:
    assert backtest(make(tmp_path), *extra, "--db", str(tmp_path / "r.duckdb")) == 2
    captured = capsys.readouterr()
    error = captured.err.strip()
    assert error.startswith("ct: ") and "\n" not in error and "Traceback" not in captured.err
    assert re.search(message, error), error
    assert not (tmp_path / "r.duckdb").exists()  # nothing half-written


def test_option_mix_ups_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "h.csv", drifting_history())
    assert main(["backtest", "--file", str(path), "--timestamp-column", "created_at"]) == 2
    assert "--file needs --timestamp-column and --label-column" in capsys.readouterr().err
    assert main(["backtest", "--stream", "sea_abrupt", "--numeric", "x"]) == 2
    assert "--numeric only apply to --file" in capsys.readouterr().err
