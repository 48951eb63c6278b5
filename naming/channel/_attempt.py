"""One attempt of a call on one subchannel, and the put contract.

Each ``put`` a pick returns gets exactly one of :func:`report` (a call ran on that address: its
outcome) and :func:`abandon` (none did: the pick could not be used). Every driver of the call policy
keeps it through these functions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from balancers import DoneInfo, Put

from ._errors import closed_error
from ._subchannel import BaseSubchannel

__all__ = ["abandon", "attempt_done", "report", "start_attempt"]

log = logging.getLogger(__name__)

Code = grpc.StatusCode


def report(put: Put | None, code: Any, latency: float, error: BaseException | None) -> None:
    """Give ``put`` (if any) the outcome of the call that ran on its address; never raises."""
    if put is not None:
        try:
            put(DoneInfo(code, latency, error))
        except Exception:
            log.exception("channel: the balancer's put() failed")


def abandon(put: Put | None) -> None:
    """Tell ``put`` that no call ran on its address: ``put.abandon()`` if it has one; never raises."""
    method = getattr(put, "abandon", None)
    if method is not None:
        try:
            method()
        except Exception:
            log.exception("channel: the balancer's put.abandon() failed")


def start_attempt(subchannel: BaseSubchannel, put: Put | None, begin: Callable[[], Any]) -> Any:
    """``begin()``, which starts grpc's call on ``subchannel``; a CallError when grpc refuses.

    A call grpc refuses (ValueError: its subchannel was closed under it, the channel is closing)
    never ran: ``put`` is abandoned and the outcome is CANCELLED. Whatever else ``begin()`` raises
    (bad arguments) is raised, ``put`` abandoned too.
    """
    try:
        return begin()
    except BaseException as exc:
        subchannel.release()
        abandon(put)
        if isinstance(exc, ValueError) and subchannel.closed:
            return closed_error()
        raise


def attempt_done(subchannel: BaseSubchannel, put: Put | None, start: float, call: Any) -> Any:
    """Count a finished attempt (``call``) out of its subchannel, report it to ``put``; its code."""
    subchannel.release()
    code = call.code()
    report(put, code, time.perf_counter() - start, None if code is Code.OK else call)
    return code
