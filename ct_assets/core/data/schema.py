"""The data contract shared by the simulator, validation, features, drift and training.

Domain: order risk for an online shop. Each row is one order (an *event*); the binary label
``is_fraud`` says whether the order ended in a fraud chargeback. Labels arrive separately and
later, as an upstream chargeback system would deliver them.

Landing layout written by any upstream (the simulator is one):
``<landing>/<YYYY-MM-DD>/events.parquet``      orders placed that day
``<landing>/<YYYY-MM-DD>/labels.parquet``      labels that *arrived* that day (for earlier orders)
``<landing>/<YYYY-MM-DD>/complaints.parquet``  one row: that day's customer complaint count
A day folder appears atomically (written under a dot-prefixed temporary name, then renamed).
"""

from __future__ import annotations

from dataclasses import dataclass

EVENTS_FILE = "events.parquet"
LABELS_FILE = "labels.parquet"
COMPLAINTS_FILE = "complaints.parquet"

REGIONS: tuple[str, ...] = ("north", "south", "east", "west", "central")
CHANNELS: tuple[str, ...] = ("web", "ios", "android")
PROTECTED_GROUPS: tuple[str, ...] = ("group_a", "group_b")

# query_term -> category family. New (unseen) terms may appear in the stream: validation
# accepts any short non-empty term, drift monitoring reports the unseen share.
QUERY_TERMS: dict[str, str] = {
    "headphones": "electronics", "laptop": "electronics", "phone_case": "electronics",
    "charger": "electronics", "smartwatch": "electronics", "camera": "electronics",
    "game_console": "electronics", "tablet": "electronics",
    "sneakers": "fashion", "jacket": "fashion", "handbag": "fashion", "sunglasses": "fashion",
    "dress": "fashion", "jeans": "fashion", "watch_strap": "fashion", "boots": "fashion",
    "sofa": "home", "lamp": "home", "blender": "home", "rug": "home", "coffee_maker": "home",
    "pillow": "home", "kettle": "home", "vacuum": "home",
    "lipstick": "beauty", "perfume": "beauty", "shampoo": "beauty", "face_cream": "beauty",
    "nail_polish": "beauty", "hair_dryer": "beauty",
    "yoga_mat": "sports", "dumbbells": "sports", "bike_helmet": "sports", "tent": "sports",
    "running_shoes": "sports", "football": "sports", "protein": "sports", "skateboard": "sports",
}
CATEGORIES: tuple[str, ...] = ("electronics", "fashion", "home", "beauty", "sports")

ID_COLUMN = "event_id"
TIME_COLUMN = "event_ts"
FRAUD_LABEL_COLUMN = "is_fraud"  # 1 when the order ended in a fraud chargeback
GROUP_COLUMN = "protected_group"  # kept for fairness evaluation, never a model input


@dataclass(frozen=True)
class NumericColumn:
    name: str
    dtype: str  # "float" or "int"
    min_value: float
    max_value: float
    description: str


# Raw numeric columns of events.parquet with their valid ranges (inclusive).
NUMERIC_COLUMNS: tuple[NumericColumn, ...] = (
    NumericColumn("price", "float", 0.01, 100_000.0, "order value in EUR"),
    NumericColumn("discount", "float", 0.0, 0.95, "discount share of list price"),
    NumericColumn("quantity", "int", 1, 100, "items in the order"),
    NumericColumn("account_age_days", "int", 0, 20_000, "age of the customer account"),
    NumericColumn("prior_chargebacks", "int", 0, 1_000, "chargebacks seen on the account before"),
    NumericColumn("sensor_motion", "float", -1_000.0, 1_000.0, "device motion reading"),
    NumericColumn("sensor_pressure", "float", -1_000.0, 1_000.0, "touch pressure reading"),
    NumericColumn("sensor_latency_ms", "float", 0.0, 60_000.0, "device round-trip latency"),
    NumericColumn("sensor_signal", "float", -1_000.0, 1_000.0, "radio signal strength reading"),
)
SENSOR_COLUMNS: tuple[str, ...] = tuple(c.name for c in NUMERIC_COLUMNS if c.name.startswith("sensor_"))

# Raw categorical columns of events.parquet (query_term has an open vocabulary).
CATEGORICAL_COLUMNS: tuple[str, ...] = ("region", "channel", "query_term", "category")
MAX_TERM_LENGTH = 64

EVENT_COLUMNS: tuple[str, ...] = (
    ID_COLUMN, TIME_COLUMN, *CATEGORICAL_COLUMNS, *(c.name for c in NUMERIC_COLUMNS), GROUP_COLUMN,
)
LABEL_COLUMNS: tuple[str, ...] = (ID_COLUMN, FRAUD_LABEL_COLUMN, "labelled_at")
COMPLAINT_COLUMNS: tuple[str, ...] = ("day", "orders", "complaints")

# Columns of the `features` table (built by core/features.py) that models consume.
# `protected_group` is carried alongside for fairness evaluation and never fed to a model.
FEATURE_NUMERIC: tuple[str, ...] = (
    "log_price", "discount", "quantity", "log_account_age", "prior_chargebacks",
    "sensor_motion", "sensor_pressure", "sensor_latency_ms", "sensor_signal",
    "hour_of_day", "is_weekend", "price_vs_region_7d",
)
FEATURE_CATEGORICAL: tuple[str, ...] = ("region", "channel", "query_term", "category")
# Segments drift is localised over and fairness is evaluated over.
SEGMENT_COLUMNS: tuple[str, ...] = ("region", "category", GROUP_COLUMN)
