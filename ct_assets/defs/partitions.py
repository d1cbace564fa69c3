"""One partition per landed day; the landing sensor adds a key when a day folder appears."""

import dagster as dg

days_partitions = dg.DynamicPartitionsDefinition(name="days")
