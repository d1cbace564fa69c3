"""Alerts: a DuckDB ``alerts`` table plus a notifier that pages someone (log, JSON-lines file or webhook).

"Page the on-call engineer instead of deploying": a failed gate, a rollback, an escalation or a model
waiting for approval calls :func:`raise_alert`. The row is written first, then the notifier is tried and
the delivery outcome recorded on the row. Delivery never raises: an unreachable webhook is logged and
recorded (``delivered = false``, ``delivery_error``), so a broken pager cannot break the pipeline.

A webhook URL often carries a secret token in its path or query, so it is never logged or stored:
rows and logs name only its host.

The alert id is a hash of kind, severity, subject, message and details: raising the same alert again
(a re-run check, a re-evaluated sensor tick) returns the stored row and does not page a second time.

Example
-------
>>> import duckdb
>>> con, notifier = duckdb.connect(), notifier_from_config("log", None)
>>> alert = raise_alert(con, "gate_failed", "error", "m-0123456789ab", "holdout gate failed: AUC -0.03",
...                     {"gate": "holdout"}, notifier)
>>> alert.alert_id, alert.delivered
('al-96777d0e0b1d6284', True)
>>> raise_alert(con, "gate_failed", "error", "m-0123456789ab", "holdout gate failed: AUC -0.03",
...             {"gate": "holdout"}, notifier) == alert  # raised again: the stored row, no second page
True
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Protocol
from urllib.parse import urlsplit

import duckdb

from ct_assets.core.common import utc_now

logger = logging.getLogger(__name__)

SEVERITIES: tuple[str, ...] = ("warning", "error")
# Kinds the CT loop raises; any other snake_case kind is accepted for new uses.
KIND_GATE_FAILED = "gate_failed"
KIND_ROLLBACK = "rollback"
KIND_ESCALATION = "escalation"
KIND_APPROVAL_NEEDED = "approval_needed"
KIND_POLICY_PROPOSAL = "policy_proposal"
NOTIFIER_KINDS: tuple[str, ...] = ("log", "file", "webhook")
_KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

# Copied into the analyst snapshot (core/ops/snapshots.py).
ANALYST_TABLES: tuple[str, ...] = ("alerts",)
_DDL = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id VARCHAR PRIMARY KEY,
    raised_at TIMESTAMP NOT NULL,
    severity VARCHAR NOT NULL CHECK (severity IN ('warning', 'error')),
    kind VARCHAR NOT NULL,
    subject VARCHAR NOT NULL,
    message VARCHAR NOT NULL,
    details JSON NOT NULL,
    notifier VARCHAR NOT NULL,
    delivery_target VARCHAR,
    delivered BOOLEAN,
    delivery_error VARCHAR
)
"""
_COLUMNS: tuple[str, ...] = ("alert_id", "raised_at", "severity", "kind", "subject", "message", "details",
                             "notifier", "delivery_target", "delivered", "delivery_error")


@dataclass(frozen=True)
class Alert:
    """One ``alerts`` row. ``delivered`` is None only while delivery is being attempted."""

    alert_id: str
    raised_at: datetime
    severity: str
    kind: str
    subject: str
    message: str
    details: dict[str, Any]
    notifier: str
    delivery_target: str | None
    delivered: bool | None
    delivery_error: str | None

    def to_payload(self) -> dict[str, Any]:
        """The JSON document notifiers send (no delivery fields: they are not known yet)."""
        return {"alert_id": self.alert_id, "raised_at": self.raised_at.isoformat(), "severity": self.severity,
                "kind": self.kind, "subject": self.subject, "message": self.message, "details": self.details}


@dataclass(frozen=True)
class Delivery:
    """What a notifier did with an alert. ``error`` never contains a webhook URL."""

    delivered: bool
    error: str | None = None


class Notifier(Protocol):
    """Sends an alert somewhere; must not raise for delivery failures."""

    kind: str

    @property
    def target(self) -> str | None:
        """Where alerts go, safe to store and log (a file path, a webhook host)."""

    def notify(self, alert: Alert) -> Delivery:
        """Try to deliver ``alert``."""


class LogNotifier:
    """Writes alerts to Python logging (``ct_assets.core.ops.alerts``): WARNING or ERROR by severity."""

    kind = "log"

    @property
    def target(self) -> str | None:
        return logger.name

    def notify(self, alert: Alert) -> Delivery:
        level = logging.ERROR if alert.severity == "error" else logging.WARNING
        logger.log(level, "ALERT %s [%s] %s: %s (details: %s)", alert.kind, alert.severity, alert.subject,
                   alert.message, json.dumps(alert.details, sort_keys=True))
        return Delivery(True)


class FileNotifier:
    """Appends each alert as one JSON line to ``path`` (parent folders are created)."""

    kind = "file"

    def __init__(self, path: str | Path) -> None:
        if not str(path).strip():
            raise ValueError("file notifier needs a non-empty path")
        self._path = Path(path)

    @property
    def target(self) -> str | None:
        return str(self._path)

    def notify(self, alert: Alert) -> Delivery:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(alert.to_payload(), sort_keys=True) + "\n")
        except OSError as error:
            logger.warning("alert %s: could not append to %s: %s", alert.alert_id, self._path, error)
            return Delivery(False, f"{type(error).__name__}: {error.strerror or error}")
        return Delivery(True)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would be replayed as a body-less GET; treat the redirect as a failure instead."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None


class WebhookNotifier:
    """POSTs each alert as JSON to a webhook URL; the URL itself is kept private (only its host is shown)."""

    kind = "webhook"

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            # The URL is not echoed: it may hold a secret even when malformed.
            raise ValueError("webhook URL must be an http:// or https:// URL with a host")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 60:
            raise ValueError(f"webhook timeout must be in (0, 60] seconds, got {timeout!r}")
        self._url = url
        # Parts that may carry a secret (token path, query, credentials), scrubbed from any error text.
        self._secrets = tuple(sorted({url, parts.path, parts.query, parts.fragment, parts.username or "",
                                      parts.password or ""} - {"", "/"}, key=len, reverse=True))
        self._host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        self._timeout = float(timeout)
        self._opener = urllib.request.build_opener(_NoRedirect)

    def __repr__(self) -> str:
        return f"WebhookNotifier(host={self._host!r}, timeout={self._timeout})"

    @property
    def target(self) -> str | None:
        return self._host

    def notify(self, alert: Alert) -> Delivery:
        body = json.dumps(alert.to_payload(), sort_keys=True).encode("utf-8")
        request = urllib.request.Request(self._url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            error.close()  # the error carries the open response
            return self._failed(alert, f"HTTP {error.code} {error.reason}")
        except urllib.error.URLError as error:
            return self._failed(alert, f"URLError: {error.reason}")
        except (OSError, ValueError, http.client.HTTPException) as error:  # timeouts, resets, bad responses
            return self._failed(alert, f"{type(error).__name__}: {error}")
        if not 200 <= status < 300:
            return self._failed(alert, f"HTTP {status}")
        return Delivery(True)

    def _failed(self, alert: Alert, error: str) -> Delivery:
        # Exception texts rarely contain the URL, but never let any part of it through.
        safe = error
        for secret in self._secrets:
            safe = safe.replace(secret, "<redacted>")
        logger.warning("alert %s: webhook delivery to %s failed: %s", alert.alert_id, self._host, safe)
        return Delivery(False, safe)


def notifier_from_config(kind: str, target: str | None) -> LogNotifier | FileNotifier | WebhookNotifier:
    """Build the notifier named by config: ``log`` (no target), ``file`` (a path) or ``webhook`` (a URL)."""
    if kind == "log":
        return LogNotifier()
    if kind in ("file", "webhook"):
        if target is None or not str(target).strip():
            raise ValueError(f"alert notifier {kind!r} needs a target ({'a path' if kind == 'file' else 'a URL'})")
        return FileNotifier(target) if kind == "file" else WebhookNotifier(target)
    raise ValueError(f"unknown alert notifier kind {kind!r}; expected one of {list(NOTIFIER_KINDS)}")


def ensure_alert_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``alerts`` table if it does not exist (idempotent)."""
    con.execute(_DDL)


def alert_id_for(kind: str, severity: str, subject: str, message: str, details: Mapping[str, Any]) -> str:
    """Deterministic id: the same alert raised twice is one row."""
    canonical = json.dumps([kind, severity, subject, message, _details_json(details)], separators=(",", ":"))
    return f"al-{hashlib.sha256(canonical.encode('utf-8')).hexdigest()[:16]}"


def raise_alert(con: duckdb.DuckDBPyConnection, kind: str, severity: str, subject: str, message: str,
                details: Mapping[str, Any] | None, notifier: Notifier) -> Alert:
    """Record an alert and deliver it with ``notifier``; return the stored row (with the delivery outcome).

    Raising an alert that is already stored returns the stored row without notifying again.
    """
    if not isinstance(kind, str) or not _KIND_PATTERN.match(kind):
        raise ValueError(f"alert kind must be a snake_case name such as {KIND_GATE_FAILED!r}, got {kind!r}")
    if severity not in SEVERITIES:
        raise ValueError(f"alert severity must be one of {list(SEVERITIES)}, got {severity!r}")
    for name, value in (("subject", subject), ("message", message)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"alert {name} must be a non-empty string, got {value!r}")
    if not callable(getattr(notifier, "notify", None)) or not isinstance(getattr(notifier, "kind", None), str):
        raise ValueError(f"notifier must be a LogNotifier, FileNotifier or WebhookNotifier, got {notifier!r}")
    details = dict(details or {})
    details_json = _details_json(details)
    alert_id = alert_id_for(kind, severity, subject, message, details)
    ensure_alert_tables(con)
    existing = get_alert(con, alert_id)
    if existing is not None:
        return existing
    alert = Alert(alert_id, utc_now(), severity, kind, subject, message, json.loads(details_json),
                  notifier.kind, notifier.target, None, None)
    # Stored before delivery, so a crash while paging still leaves the alert on record.
    con.execute(f"INSERT INTO alerts ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})",
                [alert.alert_id, alert.raised_at, severity, kind, subject, message, details_json, alert.notifier,
                 alert.delivery_target, None, None])
    delivery = notifier.notify(alert)
    con.execute("UPDATE alerts SET delivered = ?, delivery_error = ? WHERE alert_id = ?",
                [delivery.delivered, delivery.error, alert_id])
    stored = get_alert(con, alert_id)
    assert stored is not None  # just written
    return stored


def get_alert(con: duckdb.DuckDBPyConnection, alert_id: str) -> Alert | None:
    """The alert with ``alert_id``, or None."""
    if not _has_alerts(con):
        return None
    rows = con.execute(f"SELECT {', '.join(_COLUMNS)} FROM alerts WHERE alert_id = ?", [alert_id]).fetchall()
    return _row_to_alert(rows[0]) if rows else None


def list_alerts(con: duckdb.DuckDBPyConnection, kind: str | None = None) -> list[Alert]:
    """Alerts newest first, optionally only one kind."""
    if not _has_alerts(con):
        return []
    select = f"SELECT {', '.join(_COLUMNS)} FROM alerts"
    if kind is None:
        rows = con.execute(f"{select} ORDER BY raised_at DESC, alert_id").fetchall()
    else:
        rows = con.execute(f"{select} WHERE kind = ? ORDER BY raised_at DESC, alert_id", [kind]).fetchall()
    return [_row_to_alert(row) for row in rows]


def _row_to_alert(row: tuple[Any, ...]) -> Alert:
    values = dict(zip(_COLUMNS, row))
    values["details"] = json.loads(values["details"])
    return Alert(**values)


def _details_json(details: Mapping[str, Any]) -> str:
    try:
        return json.dumps(dict(details), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"alert details must be plain JSON (no NaN/inf, no objects): {error}") from None


def _has_alerts(con: duckdb.DuckDBPyConnection) -> bool:
    """Readers check instead of creating the table, so read-only connections work."""
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'alerts' "
                            "AND schema_name = current_schema()").fetchall()[0][0])
