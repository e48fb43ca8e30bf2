"""Reading a server-sent-event stream into (id, event, data) records."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    id: int
    event: str
    data: dict[str, Any]


def parse(lines: Iterable[str]) -> list[Event]:
    events: list[Event] = []
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if fields:
                events.append(Event(int(fields["id"]), fields["event"], json.loads(fields["data"])))
            fields = {}
            continue
        name, _, value = line.partition(": ")
        fields[name] = value
    if fields:
        events.append(Event(int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return events
