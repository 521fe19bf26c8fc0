"""The probes' own judgements, without a cluster: logs -f new lines vs history, attach ticks, idle cuts
against the declared timeout, byte checks from digests, budgets."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.budgets import Budgets
from conformance.errors import ConfigError
from conformance.model import ErrorClass, Timings
from probes.common import verify_bytes, verify_digest
from probes.follow import NEW_AFTER_S, increasing, judge_follow, tick_numbers
from probes.idle import DEFAULT_IDLE_S, IDLE_MARGIN_S, cut_verdict, idle_silence

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def _log(first: int, count: int, start: dt.datetime, step_s: float = 0.2) -> bytes:
    lines = []
    for i in range(count):
        t = start + dt.timedelta(seconds=i * step_s)
        lines.append(f"{t:%Y-%m-%dT%H:%M:%S.%f}000Z tick {first + i}\n")
    return "".join(lines).encode()


def test_history_alone_fails() -> None:
    history = _log(100, 20, T0 - dt.timedelta(seconds=4))  # ends before the request
    cls, message = judge_follow(history, T0)
    assert cls is ErrorClass.DATA_MISMATCH and "history, not new lines" in message


def test_history_then_new_lines_pass() -> None:
    data = _log(100, 20, T0 - dt.timedelta(seconds=4)) + _log(120, 6, T0 + dt.timedelta(seconds=NEW_AFTER_S))
    cls, message = judge_follow(data, T0)
    assert cls is ErrorClass.NONE and "6 new lines" in message


def test_one_new_line_is_not_enough() -> None:
    data = _log(100, 5, T0 - dt.timedelta(seconds=1)) + _log(105, 1, T0 + dt.timedelta(seconds=1))
    assert judge_follow(data, T0)[0] is ErrorClass.DATA_MISMATCH


def test_lines_without_timestamps_cannot_pass() -> None:
    assert judge_follow(b"tick 1\ntick 2\ntick 3\n", T0)[0] is ErrorClass.DATA_MISMATCH


def test_replayed_ticks_out_of_order_fail() -> None:
    late = T0 + dt.timedelta(seconds=1)
    data = _log(5, 3, late) + _log(1, 3, late + dt.timedelta(seconds=1))
    cls, message = judge_follow(data, T0)
    assert cls is ErrorClass.DATA_MISMATCH and "out of order" in message


def test_attach_content() -> None:
    assert tick_numbers(["tick 1", "tick 2"]) == [1, 2] and increasing([1, 2, 5])
    assert tick_numbers(["tick 1", "hello"]) is None
    assert not increasing([3, 3]) and not increasing([4, 2])


def test_idle_silence() -> None:
    assert idle_silence(60) == 60 + IDLE_MARGIN_S
    assert idle_silence(None) == DEFAULT_IDLE_S
    assert idle_silence(350) == DEFAULT_IDLE_S  # beyond the cap: check that nothing cuts before it
    assert idle_silence(350, 400) == 355  # a longer --idle-s waits out a declared 350 s


def test_cuts_against_the_declared_timeout() -> None:
    assert cut_verdict(60.2, 60, "cut")[0] is ErrorClass.IDLE_CUT
    assert cut_verdict(58.5, 60, "cut")[0] is ErrorClass.IDLE_CUT  # timers fire a little early
    assert cut_verdict(57.5, 60, "cut")[0] is ErrorClass.RESET
    cls, message = cut_verdict(10.0, 60, "cut")
    assert cls is ErrorClass.RESET and "before the declared idle timeout of 60 s" in message
    assert cut_verdict(10.0, 350, "cut")[0] is ErrorClass.RESET
    cls, message = cut_verdict(10.0, None, "cut")
    assert cls is ErrorClass.IDLE_CUT and "declares none" in message


SIZE = 5000
DATA = bytes(i % 253 for i in range(SIZE))


@settings(max_examples=100, deadline=None)
@given(n=st.integers(min_value=0, max_value=SIZE - 1))
def test_any_truncation_or_corruption_is_caught(n: int) -> None:
    short = verify_bytes(DATA, DATA[:n])
    assert short is not None and short[0] is ErrorClass.TRUNCATED and f"{n} of {SIZE} bytes" in short[1]
    bad = bytearray(DATA)
    bad[n] ^= 1
    wrong = verify_bytes(DATA, bytes(bad))
    assert wrong is not None and wrong[0] is ErrorClass.DATA_MISMATCH and f"offset {n} " in wrong[1]
    sha = hashlib.sha256(DATA).hexdigest()
    digest_short = verify_digest(SIZE, sha, n, hashlib.sha256(DATA[:n]).hexdigest())
    assert digest_short is not None and digest_short[0] is ErrorClass.TRUNCATED
    digest_bad = verify_digest(SIZE, sha, SIZE, hashlib.sha256(bytes(bad)).hexdigest())
    assert digest_bad is not None and digest_bad[0] is ErrorClass.DATA_MISMATCH
    assert verify_bytes(DATA, DATA) is None and verify_digest(SIZE, sha, SIZE, sha) is None


def test_budgets() -> None:
    budgets = Budgets.parse({"exec": {"total_ms": 2000}, "port-forward": {"first_byte_ms": 1000}})
    assert budgets.exceeded("exec", Timings(total_s=1.5)) is None
    over = budgets.exceeded("exec", Timings(total_s=2.5))
    assert over is not None and "2500 ms" in over and "budget 2000 ms" in over
    assert budgets.exceeded("port-forward", Timings(total_s=9)) is None  # no first byte seen: not judged
    assert budgets.exceeded("port-forward", Timings(first_byte_s=1.2)) is not None
    assert budgets.exceeded("attach", Timings(total_s=100)) is None


@pytest.mark.parametrize(
    "raw",
    [[1], {"exec": 5}, {"exec": {"p50_ms": 5}}, {"exec": {"total_ms": -1}}, {"exec": {"total_ms": True}}],
)
def test_bad_budgets_are_config_errors(raw: object) -> None:
    with pytest.raises(ConfigError, match="budgets"):
        Budgets.parse(raw)
