"""How people read queue control: a rate limit and every audit line in words, never Python reprs."""

import pytest

from jobs.queues.wording import change_text, rate_text


@pytest.mark.parametrize(
    "limit,period,words",
    [
        (10, 60, "10/min"),
        (5, 1, "5/s"),
        (100, 3600, "100/h"),
        (1000, 86400, "1000/day"),
        (5, 10, "5 per 10 s"),
        (3, 120, "3 per 2 min"),
        (7, 7200, "7 per 2 h"),
    ],
)
def test_a_rate_limit_in_words(limit, period, words):
    assert rate_text({"limit": limit, "period": period}) == words


def test_no_rate_limit_in_words():
    assert rate_text(None) == "none"


@pytest.mark.parametrize(
    "action,before,after,reason,words",
    [
        ("paused", {"paused": False}, {"paused": True}, "deploy", "paused (reason: deploy)"),
        ("paused", {"paused": False}, {"paused": True}, "", "paused"),
        ("resumed", {"paused": True}, {"paused": False}, "", "resumed"),
        ("resumed", {"paused": True}, {"paused": False}, "deploy done", "resumed (reason: deploy done)"),
        ("limit_set", None, {"limit": 10, "period": 60}, "", "rate limit set to 10/min (was none)"),
        (
            "limit_set",
            {"limit": 10, "period": 60},
            {"limit": 5, "period": 10},
            "",
            "rate limit set to 5 per 10 s (was 10/min)",
        ),
        (
            "limit_cleared",
            {"limit": 10, "period": 60},
            None,
            "quota lifted",
            "rate limit cleared (was 10/min) (reason: quota lifted)",
        ),
        # A setting without words of its own (a future one) still reads as words, not a dict.
        ("changed", {"concurrency": 2}, {"concurrency": 4}, "", "concurrency changed 2 → 4"),
        ("changed", {"concurrency": None}, {"concurrency": 4}, "", "concurrency changed none → 4"),
    ],
)
def test_an_audit_line_in_words(action, before, after, reason, words):
    assert change_text(action=action, before=before, after=after, reason=reason) == words
