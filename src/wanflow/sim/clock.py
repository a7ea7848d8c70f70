"""DashScope's service clock: the zone its timestamps and task-list filters are written in.

The documents do not name the zone; Beijing's service is widely believed to use UTC+8. The
simulator takes it as a knob (``--list-clock-offset``) and writes every DashScope timestamp in it.
"""

from __future__ import annotations

import datetime as dt
import re

_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")
# The task list's filter format, e.g. 20230420000000 (the SDK's docstring example).
LIST_TIME_FORMAT = "%Y%m%d%H%M%S"


def parse_offset(text: str) -> dt.timezone:
    """``+08:00`` / ``-05:30`` as a fixed zone; ValueError for anything else."""
    match = _OFFSET.match(text.strip())
    if match is None:
        raise ValueError(f"a clock offset looks like +08:00 or -05:30, not {text!r}")
    sign, hours, minutes = match.groups()
    if int(hours) > 14 or int(minutes) >= 60:
        raise ValueError(f"{text} is not a real UTC offset")
    delta = dt.timedelta(hours=int(hours), minutes=int(minutes))
    return dt.timezone(-delta if sign == "-" else delta)


def service_time(timestamp: float, zone: dt.timezone) -> str:
    """A task body's time, ``YYYY-MM-DD HH:MM:SS.mmm`` in the service's clock."""
    return dt.datetime.fromtimestamp(timestamp, zone).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def parse_list_time(text: str, zone: dt.timezone) -> float:
    """A task-list filter, strictly ``YYYYMMDDhhmmss`` in the service's clock; ValueError otherwise."""
    if len(text) != 14 or not text.isdigit():
        raise ValueError(f"time must be yyyyMMddHHmmss, got {text!r}")
    return dt.datetime.strptime(text, LIST_TIME_FORMAT).replace(tzinfo=zone).timestamp()
