"""A real stream with natural temporal drift: US-census (ACS) employment, Massachusetts, 2015-2018.

The data are the American Community Survey person records (the folktables ``ACSEmployment`` task:
is a person employed?) that the ``nannyml`` wheel ships as Parquet files. They are fetched once
through pip (``pip download nannyml==<pinned> --no-deps``), checked against pinned SHA-256 hashes
(of the wheel and of each file) and cached; nannyml itself is never installed or imported.

Per year (2015: nannyml's *reference* file, which carries its labels; 2016-2018: the *analysis*
file joined with *analysis_target* on ``id``): 68,785 / 69,126 / 69,635 / 70,131 people, employed
49.6 % / 50.1 % / 50.3 % / 50.5 %. Within a year the rows are ordered by household type, so batches
are drawn within each year in a seeded random order; years follow in time order.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import duckdb
import numpy as np
import pandas as pd

from ct_assets.core.backtest.stream import LABEL_COLUMN, Stream, StreamSpec

NANNYML_VERSION = "0.13.1"
NANNYML_WHEEL = f"nannyml-{NANNYML_VERSION}-py3-none-any.whl"
NANNYML_WHEEL_SHA256 = "cf5f4a33489834ae6773cb1baa33a0f98c0a3ee6ed9b43049478b25ce22fe869"
WHEEL_DATA_DIR = "nannyml/datasets/data"
# The files taken from the wheel and their SHA-256: a cached copy is trusted only if it matches.
EMPLOYMENT_FILES: dict[str, str] = {
    "employment_MA_reference.pq": "21d0e33655666071bde9ed21bf35b24fe14c1476e3dd37a5194b827ad5a570e4",
    "employment_MA_analysis.pq": "591328bcf7e46139660f2cc6b1705a6f2f66edf2418ce2a893cf2892be3f66a7",
    "employment_MA_analysis_target.pq": "c306840f0c092bda7608a09e61e7e715ac2b7fb2d17da8062900c3ecd6fdbe30",
}
MAX_EXTRACTED_BYTES = 64 * 1024 * 1024  # each file is a few MB; anything larger is not what we pinned
PIP_TIMEOUT_SECONDS = 600

PROJECT_ROOT = Path(__file__).resolve().parents[3]
EXTERNAL_DATA_ENV = "CT_EXTERNAL_DATA_DIR"

# ACS PUMS columns (data dictionary names). AGEP is numeric; the others are codes, used as categories:
# SCHL education, MAR marital status, RELP relationship to the householder, DIS disability, ESP parents'
# employment, CIT citizenship, MIG mobility (where one lived a year ago), MIL military service,
# ANC ancestry, NATIVITY, DEAR/DEYE/DREM hearing/vision/cognitive difficulty.
EMPLOYMENT_NUMERIC: tuple[str, ...] = ("AGEP",)
EMPLOYMENT_CATEGORICAL: tuple[str, ...] = (
    "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC", "NATIVITY", "DEAR", "DEYE", "DREM",
)
# Protected attributes: carried for the fairness gate, never model inputs.
SEX_COLUMN, RACE_COLUMN = "SEX", "RAC1P"
SEX_LABELS: dict[str, str] = {"1": "male", "2": "female"}  # ACS PUMS coding
YEAR_COLUMN, ID_COLUMN, TARGET_COLUMN = "year", "id", "employed"


def default_cache_dir() -> Path:
    """``$CT_EXTERNAL_DATA_DIR/nannyml``, else ``<project>/data/external/nannyml``."""
    root = os.environ.get(EXTERNAL_DATA_ENV)
    return (Path(root) if root else PROJECT_ROOT / "data" / "external") / "nannyml"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _cached(cache_dir: Path) -> bool:
    return all((cache_dir / name).is_file() and _sha256(cache_dir / name) == digest
               for name, digest in EMPLOYMENT_FILES.items())


def _download_wheel(target_dir: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", f"nannyml=={NANNYML_VERSION}", "--no-deps",
               "--only-binary=:all:", "--disable-pip-version-check", "--quiet", "-d", str(target_dir)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"pip download of nannyml=={NANNYML_VERSION} timed out after "
                           f"{PIP_TIMEOUT_SECONDS} s") from None
    if result.returncode != 0:
        raise RuntimeError(f"pip download of nannyml=={NANNYML_VERSION} failed (exit {result.returncode}): "
                           f"{(result.stderr or result.stdout).strip()[-2000:]}")
    wheel = target_dir / NANNYML_WHEEL
    if not wheel.is_file():
        raise RuntimeError(f"pip download did not produce {NANNYML_WHEEL} in {target_dir}")
    return wheel


def _extract(wheel: Path, cache_dir: Path) -> None:
    """Copy the pinned data files out of ``wheel`` into ``cache_dir``, each written atomically."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    root = cache_dir.resolve()
    with zipfile.ZipFile(wheel) as archive:
        for name, digest in EMPLOYMENT_FILES.items():
            member = f"{WHEEL_DATA_DIR}/{name}"
            try:
                info = archive.getinfo(member)
            except KeyError:
                raise ValueError(f"{wheel.name} has no {member}") from None
            if info.file_size > MAX_EXTRACTED_BYTES:
                raise ValueError(f"{member} in {wheel.name} is {info.file_size} bytes, more than expected")
            # The output name is the member's base name, and must land inside the cache directory.
            target = (root / PurePosixPath(member).name).resolve()
            if target.parent != root:
                raise ValueError(f"refusing to extract {member!r} outside {root}")
            partial = target.with_name(f".{target.name}.part-{os.getpid()}")
            with archive.open(info) as source, partial.open("wb") as sink:
                shutil.copyfileobj(source, sink)
            if _sha256(partial) != digest:
                partial.unlink()
                raise ValueError(f"{member} in {wheel.name} does not match its pinned SHA-256")
            os.replace(partial, target)


def fetch_employment_ma(cache_dir: Path | None = None) -> Path:
    """The directory holding the three ``employment_MA_*.pq`` files, downloading them if needed.

    A cache hit needs every file present with its pinned SHA-256. Otherwise the nannyml wheel is
    downloaded with pip into a temporary directory (about 23 MB), refused unless its SHA-256 equals
    ``NANNYML_WHEEL_SHA256``, and only the data files are extracted. Raises RuntimeError when pip
    fails (no registry access) and ValueError on any hash mismatch.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if _cached(cache_dir):
        return cache_dir
    with tempfile.TemporaryDirectory(prefix="ct-nannyml-") as tmp:
        wheel = _download_wheel(Path(tmp))
        actual = _sha256(wheel)
        if actual != NANNYML_WHEEL_SHA256:
            raise ValueError(f"{wheel.name} has SHA-256 {actual}, expected {NANNYML_WHEEL_SHA256}; refusing it")
        _extract(wheel, cache_dir)
    return cache_dir


def load_employment_ma(cache_dir: Path | None = None) -> pd.DataFrame:
    """All four years as one frame (id, year, features, SEX, RAC1P, employed), ordered by id."""
    data_dir = fetch_employment_ma(cache_dir)
    selected = (ID_COLUMN, YEAR_COLUMN, *EMPLOYMENT_NUMERIC, *EMPLOYMENT_CATEGORICAL, SEX_COLUMN, RACE_COLUMN)
    reference, analysis, analysis_target = (str(data_dir / name) for name in EMPLOYMENT_FILES)
    with duckdb.connect() as con:
        frame = con.execute(
            f"SELECT {', '.join(selected)}, {TARGET_COLUMN} FROM read_parquet(?) "
            f"UNION ALL SELECT {', '.join('a.' + c for c in selected)}, t.{TARGET_COLUMN} "
            f"FROM read_parquet(?) a LEFT JOIN read_parquet(?) t USING ({ID_COLUMN}) ORDER BY {ID_COLUMN}",
            [reference, analysis, analysis_target]).fetchdf()
    unlabelled = int(frame[TARGET_COLUMN].isna().sum())
    if unlabelled:
        raise ValueError(f"{unlabelled} analysis rows have no {TARGET_COLUMN!r} in {EMPLOYMENT_FILES}")
    return frame.astype({TARGET_COLUMN: np.int64})


def employment_ma_stream(batch_size: int = 2000, seed: int = 0, cache_dir: Path | None = None,
                         max_batches_per_year: int | None = None) -> Stream:
    """The ACS employment stream: label = employed, batches within each year in a seeded random order.

    Each year is shuffled with its own seeded generator and split into ``ceil(rows / batch_size)``
    near-equal batches (sizes differ by at most one row); ``max_batches_per_year`` keeps only the
    first batches of every year (small slices for tests). ``change_points`` are the first batches of
    2016, 2017 and 2018. Model inputs: ``AGEP`` (numeric) and the coded columns (categorical
    strings). ``SEX`` (``male``/``female``) is the protected column and ``RAC1P`` (race code) rides
    along; both are segment columns and neither is a model input.

    Example::

        stream = employment_ma_stream(max_batches_per_year=2)   # 8 batches of about 2000 people
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if max_batches_per_year is not None and (isinstance(max_batches_per_year, bool)
                                             or not isinstance(max_batches_per_year, int) or max_batches_per_year < 1):
        raise ValueError(f"max_batches_per_year must be a positive int or None, got {max_batches_per_year!r}")
    frame = load_employment_ma(cache_dir)
    unknown_sex = sorted(set(frame[SEX_COLUMN]) - set(SEX_LABELS))
    if unknown_sex:
        raise ValueError(f"unexpected {SEX_COLUMN} codes {unknown_sex}")
    frame[SEX_COLUMN] = frame[SEX_COLUMN].map(SEX_LABELS)
    for column in (*EMPLOYMENT_CATEGORICAL, RACE_COLUMN):
        frame[column] = frame[column].astype(str).astype(object)
    frame[EMPLOYMENT_NUMERIC[0]] = frame[EMPLOYMENT_NUMERIC[0]].astype(float)
    frame = frame.rename(columns={TARGET_COLUMN: LABEL_COLUMN})

    batches: list[pd.DataFrame] = []
    change_points: list[int] = []
    counts: list[str] = []
    for year, rows in frame.groupby(YEAR_COLUMN, sort=True):
        if batches:
            change_points.append(len(batches))
        order = np.random.default_rng(np.random.SeedSequence([seed, int(year)])).permutation(len(rows))
        parts = np.array_split(order, math.ceil(len(rows) / batch_size))
        if max_batches_per_year is not None:
            parts = parts[:max_batches_per_year]
        batches.extend(rows.iloc[part].reset_index(drop=True) for part in parts)
        counts.append(f"{year}: {len(rows)} rows, {rows[LABEL_COLUMN].mean():.1%} employed, {len(parts)} batches")

    spec = StreamSpec(
        name="employment_ma", numeric_features=EMPLOYMENT_NUMERIC, categorical_features=EMPLOYMENT_CATEGORICAL,
        segment_columns=(SEX_COLUMN, RACE_COLUMN), protected_column=SEX_COLUMN,
        change_points=tuple(change_points),
        description=(f"ACS employment, Massachusetts (nannyml {NANNYML_VERSION}), seed {seed}; "
                     + "; ".join(counts)))
    return Stream(spec, tuple(batches))
