"""Production logs are one JSON object per line."""

import json

import pytest
import structlog

from resonanz.logs import configure


def test_json_mode_writes_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure("json", "INFO")
    try:
        log = structlog.get_logger("t")
        log.info("handover.queued", conversation="c1", reason="customer_request")
        log.debug("hidden.at.info")
        lines = capsys.readouterr().err.strip().splitlines()
    finally:
        structlog.reset_defaults()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["event"] == "handover.queued" and event["reason"] == "customer_request"
    assert event["level"] == "info" and event["timestamp"].endswith("Z")
