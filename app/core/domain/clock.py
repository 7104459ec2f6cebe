"""Timestamps: stored as ISO 8601 UTC, shown in local time; and the clock the services read."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def iso_utc(seconds: float) -> str:
    """Seconds since the epoch as the registry stores a time."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Clock:
    """Now, for the services: `clock()` is the time as the registry stores it (ISO 8601 UTC),
    `clock.seconds()` the same moment in seconds since the epoch (to compare with file times).
    The system's wall clock by default; a test hands a service a fixed or stepped one."""

    read_seconds: Callable[[], float] = time.time

    def seconds(self) -> float:
        return self.read_seconds()

    def __call__(self) -> str:
        return iso_utc(self.read_seconds())

    def moment(self) -> datetime:
        """The same moment as an aware UTC datetime (for date arithmetic)."""
        return datetime.fromtimestamp(self.read_seconds(), UTC)

    def local_stamp(self) -> str:
        """The same moment in local time as a file name's part (20261130T151200), for files set aside."""
        return time.strftime("%Y%m%dT%H%M%S", time.localtime(self.read_seconds()))


SYSTEM_CLOCK = Clock()


def fixed_clock(seconds: float) -> Clock:
    """A clock that always reads `seconds` (since the epoch)."""
    return Clock(lambda: seconds)


def to_local_display(stored: str | None) -> str:
    if not stored:
        return ""
    moment = datetime.fromisoformat(stored)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
