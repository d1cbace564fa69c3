"""Reading asset events from the instance's event log with a cursor (never the warehouse)."""

import json
from collections.abc import Callable

import dagster as dg

IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED]


AssetEvent = tuple[int, str, dict[str, object]]  # (storage id, partition, metadata values)


def materializations_after(instance: dg.DagsterInstance, key: dg.AssetKey,
                           after: int | None) -> tuple[list[AssetEvent], int | None]:
    """``key``'s materializations after storage id ``after`` (oldest first), and the newest storage id."""
    return _events_after(instance.fetch_materializations, key, after)


def observations_after(instance: dg.DagsterInstance, key: dg.AssetKey,
                       after: int | None) -> tuple[list[AssetEvent], int | None]:
    """``key``'s observations after storage id ``after`` (oldest first), and the newest storage id."""
    return _events_after(instance.fetch_observations, key, after)


def _events_after(fetch: Callable[..., dg.EventRecordsResult], key: dg.AssetKey,
                  after: int | None) -> tuple[list[AssetEvent], int | None]:
    new = fetch(dg.AssetRecordsFilter(asset_key=key, after_storage_id=after), limit=500, ascending=True)
    newest = new.records[-1].storage_id if new.records else after
    events = [(r.storage_id, r.partition_key or "",
               {k: v.value for k, v in r.asset_event.metadata.items()} if r.asset_event else {})
              for r in new.records]
    return events, newest


def new_materializations(context: dg.SensorEvaluationContext,
                         key: dg.AssetKey) -> tuple[list[tuple[str, dict[str, object]]], str | None]:
    """For a sensor watching one asset: (partition, metadata) since the cursor, and the new cursor."""
    return _new_events(context, materializations_after, key)


def new_observations(context: dg.SensorEvaluationContext,
                     key: dg.AssetKey) -> tuple[list[tuple[str, dict[str, object]]], str | None]:
    """``new_materializations`` for the asset's observations."""
    return _new_events(context, observations_after, key)


def _new_events(context: dg.SensorEvaluationContext,
                after: Callable[[dg.DagsterInstance, dg.AssetKey, int | None], tuple[list[AssetEvent], int | None]],
                key: dg.AssetKey) -> tuple[list[tuple[str, dict[str, object]]], str | None]:
    events, newest = after(context.instance, key, int(context.cursor) if context.cursor else None)
    return [(day, meta) for _, day, meta in events], str(newest) if newest is not None else context.cursor


def load_cursor(context: dg.SensorEvaluationContext) -> dict[str, int]:
    """A sensor watching several assets keeps one storage id per asset in a JSON cursor."""
    return {k: int(v) for k, v in json.loads(context.cursor).items()} if context.cursor else {}


def dump_cursor(cursor: dict[str, int | None]) -> str:
    return json.dumps({k: v for k, v in cursor.items() if v is not None}, sort_keys=True)
