"""Identical concurrent computations share one run (no streamlit here; threads only).

Six visitors pressing Generate with the same settings at the same moment would each
compute the same record.  :func:`single_flight` keys a computation by its content
key: the first caller computes, the others wait for its result (or its error).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _Flight:
    """One computation in progress, shared by every identical request that arrives meanwhile."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.result: Any = None
        self.error: Exception | None = None
        self.info: Any = None  # the leader's latest progress report, replayed to followers


_flights: dict[str, _Flight] = {}
_flights_lock = threading.Lock()


def single_flight(key: str, compute: Callable[[Callable[[Any], Any]], T],
                  progress: Callable[[Any], Any] | None = None, poll_s: float = 0.2) -> tuple[T, bool]:
    """Run ``compute`` once for all concurrent callers with the same ``key`` (in this process).

    The first caller (the leader) runs ``compute(relay)``; ``relay`` is its progress
    callback, which also records each report.  Callers that arrive while it runs wait
    and replay the leader's latest report to their own ``progress`` (so their canvas
    fills too, and their Stop works: ``progress`` returning False ends their wait with
    ``Stopped``, the leader goes on).  A leader's exception reaches every waiter; a
    leader that was stopped (``Stopped``, or Streamlit ending its script run) hands
    over: one waiter becomes the next leader.  No lock is held while computing, so
    no Stop can deadlock anyone.

    Returns:
        (the result, whether it was another caller's computation).
    """
    from nps.engine.sampler import Stopped
    while True:
        with _flights_lock:
            flight = _flights.get(key)
            leader = flight is None
            if leader:
                flight = _flights[key] = _Flight()
        if leader:
            break
        while not flight.done.wait(poll_s):
            if progress is not None and flight.info is not None and progress(flight.info) is False:
                raise Stopped("stopped while waiting for an identical run started by someone else")
        if flight.ok:
            return flight.result, True
        if flight.error is not None:
            raise flight.error
        # The leader was stopped: take over (or follow whoever took over first).

    def relay(info: Any) -> Any:
        flight.info = info
        return progress(info) if progress is not None else None

    try:
        flight.result = compute(relay)
        flight.ok = True
        return flight.result, False
    except Stopped:
        raise
    except Exception as exc:
        flight.error = exc
        raise
    finally:
        with _flights_lock:
            if _flights.get(key) is flight:
                del _flights[key]
        flight.done.set()
