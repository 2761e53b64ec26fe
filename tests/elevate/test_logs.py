"""Log lines carry the request and workflow they belong to, as JSON a log shipper can parse."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from temporalio import activity
from temporalio.testing import ActivityEnvironment

from elevate.logs import configure, current_request_id
from elevate.settings import Settings


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure(Settings(log_format="json"))
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    yield stream
    root.handlers[:], root.level = saved[0], saved[1]


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@activity.defn
def noisy() -> None:
    logging.getLogger("elevate.test").warning("granting took %s tries", 3)


def test_a_line_from_an_activity_names_its_request_and_workflow(captured: io.StringIO) -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id="access-request-r-42")
    env.run(noisy)
    (line,) = lines(captured)
    assert line["message"] == "granting took 3 tries"
    assert (line["request_id"], line["workflow_id"]) == ("r-42", "access-request-r-42")
    assert (line["level"], line["logger"]) == ("WARNING", "elevate.test")
    assert datetime.fromisoformat(str(line["at"])).utcoffset() == timedelta(0)


def test_a_line_while_serving_a_request_names_it(captured: io.StringIO) -> None:
    token = current_request_id.set("r-7")
    try:
        logging.getLogger("elevate.api").info("approved")
    finally:
        current_request_id.reset(token)
    logging.getLogger("elevate.api").info("unrelated")
    first, second = lines(captured)
    assert first["request_id"] == "r-7"
    assert second["request_id"] == "-"
