"""How a venue request can fail, as the order manager tells the outcomes apart.

* :class:`RateLimited` - the venue refused the request for now and did not act on it;
  it may be sent again after ``retry_after_ns``.
* :class:`VenueTimeout` - no answer in time: the venue may or may not have acted.
* :class:`VenueDisconnected` - the connection is down: the outcome is unknown too
  (the request may have left before the link dropped).

Any other exception from a venue adapter is treated like a timeout.
"""

from __future__ import annotations


class VenueError(Exception):
    """Base of the venue request failures."""


class RateLimited(VenueError):
    def __init__(self, message: str, retry_after_ns: int) -> None:
        super().__init__(message)
        self.retry_after_ns = retry_after_ns


class VenueTimeout(VenueError, TimeoutError):
    pass


class VenueDisconnected(VenueError, ConnectionError):
    pass


def failure_outcome(exc: Exception) -> str:
    """The outcome class of a failed request: rate_limited, disconnected or timeout."""
    if isinstance(exc, RateLimited):
        return "rate_limited"
    if isinstance(exc, ConnectionError):
        return "disconnected"
    return "timeout"
