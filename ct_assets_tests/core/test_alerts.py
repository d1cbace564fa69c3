"""Alerts in a real DuckDB file with each notifier; the webhook against a local HTTP server."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ct_assets.core.ops.alerts import (
    FileNotifier,
    LogNotifier,
    WebhookNotifier,
    ensure_alert_tables,
    get_alert,
    list_alerts,
    notifier_from_config,
    raise_alert,
)

SECRET = "T0KEN-s3cr3t"


class _Recorder(BaseHTTPRequestHandler):
    """Stores each POSTed JSON body and answers with the server's configured status."""

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server: Any = self.server
        server.received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(server.status)
        if 300 <= server.status < 400:
            self.send_header("Location", f"http://127.0.0.1:{server.server_port}/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return


@pytest.fixture()
def webhook_server() -> Iterator[Any]:
    server: Any = HTTPServer(("127.0.0.1", 0), _Recorder)
    server.received, server.status = [], 200
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture()
def con(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    ensure_alert_tables(con)
    ensure_alert_tables(con)  # idempotent
    return con


def all_row_text(con: duckdb.DuckDBPyConnection) -> str:
    return json.dumps([[str(v) for v in row] for row in con.execute("SELECT * FROM alerts").fetchall()])


def test_log_notifier_logs_at_the_alert_severity(con: duckdb.DuckDBPyConnection,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ct_assets.core.ops.alerts"):
        alert = raise_alert(con, "gate_failed", "error", "m-0123456789ab", "holdout gate failed: AUC -0.03",
                            {"gate": "holdout", "improvement": -0.03}, LogNotifier())
    assert alert.delivered is True and alert.delivery_error is None and alert.notifier == "log"
    assert alert == get_alert(con, alert.alert_id) and alert.details == {"gate": "holdout", "improvement": -0.03}
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "gate_failed" in record.getMessage() and "m-0123456789ab" in record.getMessage()


def test_file_notifier_appends_json_lines_and_does_not_page_twice(con: duckdb.DuckDBPyConnection,
                                                                  tmp_path: Path) -> None:
    path = tmp_path / "alerts" / "on_call.jsonl"
    notifier = notifier_from_config("file", str(path))
    first = raise_alert(con, "rollback", "error", "m-new", "rolled back: AUC worse by 0.08", {"auc_drop": 0.08},
                        notifier)
    second = raise_alert(con, "approval_needed", "warning", "m-high", "waits for approval", None, notifier)
    repeat = raise_alert(con, "rollback", "error", "m-new", "rolled back: AUC worse by 0.08", {"auc_drop": 0.08},
                         notifier)

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["alert_id"] for line in lines] == [first.alert_id, second.alert_id]
    assert lines[0]["kind"] == "rollback" and lines[0]["details"] == {"auc_drop": 0.08}
    assert repeat == first and con.execute("SELECT count(*) FROM alerts").fetchall() == [(2,)]
    assert first.delivery_target == str(path) and first.delivered is True


def test_file_notifier_failure_is_recorded_not_raised(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    blocked = tmp_path / "a_directory"
    blocked.mkdir()
    alert = raise_alert(con, "escalation", "warning", "dec-2024-03-14-abc", "budget exhausted", {},
                        FileNotifier(blocked))
    assert alert.delivered is False and "IsADirectoryError" in (alert.delivery_error or "")


def test_webhook_delivers_the_alert_as_json(con: duckdb.DuckDBPyConnection, webhook_server: Any) -> None:
    url = f"http://127.0.0.1:{webhook_server.server_port}/hooks/{SECRET}?token={SECRET}"
    notifier = notifier_from_config("webhook", url)
    alert = raise_alert(con, "gate_failed", "error", "m-leaky", "leakage gate failed: prior_chargebacks AUC 1.0",
                        {"feature": "prior_chargebacks"}, notifier)

    [(path, content_type, body)] = webhook_server.received
    assert path == f"/hooks/{SECRET}?token={SECRET}" and content_type == "application/json"
    assert body["alert_id"] == alert.alert_id and body["kind"] == "gate_failed"
    assert body["details"] == {"feature": "prior_chargebacks"} and body["subject"] == "m-leaky"
    assert alert.delivered is True and alert.delivery_target == f"127.0.0.1:{webhook_server.server_port}"
    assert SECRET not in all_row_text(con) and SECRET not in repr(notifier)


@pytest.mark.parametrize("status, error", [(500, "HTTP 500"), (302, "HTTP 302")])
def test_webhook_http_failures_are_recorded_and_the_url_never_leaks(
        con: duckdb.DuckDBPyConnection, webhook_server: Any, caplog: pytest.LogCaptureFixture,
        status: int, error: str) -> None:
    webhook_server.status = status
    url = f"http://127.0.0.1:{webhook_server.server_port}/hooks/{SECRET}"
    with caplog.at_level(logging.DEBUG):
        alert = raise_alert(con, "rollback", "error", "m-bad", "rolled back", {"step": 2}, WebhookNotifier(url))
    assert len(webhook_server.received) == 1  # tried once; a redirect is not followed
    assert alert.delivered is False and (alert.delivery_error or "").startswith(error)
    assert get_alert(con, alert.alert_id) == alert
    assert f"127.0.0.1:{webhook_server.server_port}" in caplog.text and "delivery" in caplog.text
    assert SECRET not in caplog.text and SECRET not in all_row_text(con)


def test_unreachable_webhook_is_recorded_and_the_url_never_leaks(con: duckdb.DuckDBPyConnection,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with caplog.at_level(logging.DEBUG):
        alert = raise_alert(con, "escalation", "warning", "dec-1", "a human must decide", {},
                            WebhookNotifier(f"http://127.0.0.1:{port}/hooks/{SECRET}", timeout=2.0))
    assert alert.delivered is False and "URLError" in (alert.delivery_error or "")
    assert alert.delivery_target == f"127.0.0.1:{port}"
    assert SECRET not in caplog.text and SECRET not in all_row_text(con)


def test_notifier_config_and_input_errors_are_clear(con: duckdb.DuckDBPyConnection) -> None:
    assert isinstance(notifier_from_config("log", None), LogNotifier)
    with pytest.raises(ValueError, match="unknown alert notifier kind 'pager'"):
        notifier_from_config("pager", "x")
    with pytest.raises(ValueError, match="needs a target"):
        notifier_from_config("webhook", None)
    with pytest.raises(ValueError, match="http:// or https://") as bad_url:
        notifier_from_config("webhook", f"ftp://example.org/{SECRET}")
    assert SECRET not in str(bad_url.value)
    with pytest.raises(ValueError, match="timeout"):
        WebhookNotifier("https://example.org/hook", timeout=0)
    notifier = LogNotifier()
    with pytest.raises(ValueError, match="snake_case"):
        raise_alert(con, "Gate Failed", "error", "m-1", "x", {}, notifier)
    with pytest.raises(ValueError, match="severity"):
        raise_alert(con, "gate_failed", "critical", "m-1", "x", {}, notifier)
    with pytest.raises(ValueError, match="subject"):
        raise_alert(con, "gate_failed", "error", "", "x", {}, notifier)
    with pytest.raises(ValueError, match="notifier must be"):
        raise_alert(con, "gate_failed", "error", "m-1", "x", {}, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="plain JSON"):
        raise_alert(con, "gate_failed", "error", "m-1", "x", {"auc": float("nan")}, notifier)
    assert list_alerts(con) == []


def test_list_alerts_filters_by_kind_and_reads_read_only(tmp_path: Path) -> None:
    path = tmp_path / "ct.duckdb"
    with duckdb.connect(str(path)) as con:
        assert list_alerts(con) == [] and get_alert(con, "al-0") is None  # no table yet
        raise_alert(con, "gate_failed", "error", "m-1", "fairness gate failed", {}, LogNotifier())
        raise_alert(con, "rollback", "error", "m-2", "rolled back", {}, LogNotifier())
    with duckdb.connect(str(path), read_only=True) as con:
        assert [a.subject for a in list_alerts(con, kind="rollback")] == ["m-2"]
        assert {a.kind for a in list_alerts(con)} == {"gate_failed", "rollback"}
