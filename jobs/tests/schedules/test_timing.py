"""A schedule's timing in words and its next firings (jobs.schedules.timing), as the schedule page,
its preview view and the schedule list show them."""

from datetime import UTC, datetime, timedelta

import pytest

from jobs.schedules.timing import timing_preview

# A Sunday.
NOW = datetime(2026, 12, 6, 10, 30, tzinfo=UTC)


def crontab(**fields) -> dict:
    return {"minute": "*", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*", **fields}


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        (
            crontab(minute="*/15", day_of_week="mon-fri", timezone="Europe/Paris"),
            "every 15 minutes on weekdays, Europe/Paris; next: 2026-12-07 00:00:00 CET, 00:15:00, 00:30:00",
        ),
        (
            crontab(minute="*/15", hour="9-17", day_of_week="1-5", timezone="Europe/Paris"),
            "every 15 minutes from 09:00 to 17:45 on weekdays, Europe/Paris; next: 2026-12-07 09:00:00 CET, "
            "09:15:00, 09:30:00",
        ),
        (
            crontab(minute="0", hour="3", timezone="UTC"),
            "every day at 03:00, UTC; next: 2026-12-07 03:00:00 UTC, 2026-12-08 03:00:00, 2026-12-09 03:00:00",
        ),
        (
            crontab(minute="0", day_of_week="sat,sun", timezone="America/New_York"),
            "every hour at :00 on weekends, America/New_York; next: 2026-12-06 06:00:00 EST, 07:00:00, 08:00:00",
        ),
        (
            crontab(minute="0,30", hour="3,15", day_of_month="1", month_of_year="1,7", timezone="UTC"),
            "at 03:00, 03:30, 15:00 and 15:30 on day 1 of the month in January and July, UTC; "
            "next: 2027-01-01 03:00:00 UTC, 03:30:00, 15:00:00",
        ),
        (crontab(timezone="UTC"), "every minute, UTC; next: 2026-12-06 10:31:00 UTC, 10:32:00, 10:33:00"),
    ],
)
def test_a_crontab_in_words_with_its_next_firings(fields, text):
    assert timing_preview(crontab=fields, now=NOW).text == text


def test_a_crontab_skips_the_hour_the_clocks_skip():
    # 2027-03-28: Paris goes from 02:00 to 03:00; 02:30 does not happen that day.
    preview = timing_preview(
        crontab=crontab(minute="30", hour="2", timezone="Europe/Paris"), now=datetime(2027, 3, 27, 12, tzinfo=UTC)
    )
    assert [run.isoformat() for run in preview.next_runs] == [
        "2027-03-29T02:30:00+02:00",
        "2027-03-30T02:30:00+02:00",
        "2027-03-31T02:30:00+02:00",
    ]


def test_an_interval_counts_from_the_last_run_and_the_start_time():
    every = {"every": 15, "period": "minutes"}
    assert timing_preview(interval=every, now=NOW).text == (
        "every 15 minutes; next: 2026-12-06 10:45:00 UTC, 11:00:00, 11:15:00"
    )
    last = NOW - timedelta(minutes=10)
    assert timing_preview(interval=every, last_run_at=last, now=NOW).next_runs[0] == NOW + timedelta(minutes=5)
    start = NOW + timedelta(days=1)
    assert timing_preview(interval=every, start_time=start, now=NOW).next_runs[0] == start
    assert timing_preview(interval={"every": 1, "period": "hours"}, now=NOW).rule == "every hour"


def test_disabled_expired_and_one_off_schedules():
    every = {"every": 1, "period": "days"}
    assert timing_preview(interval=every, enabled=False, now=NOW).text == "every day; disabled"
    assert timing_preview(interval=every, expires=NOW, now=NOW).text == "every day; no next run"
    once = timing_preview(interval=every, one_off=True, now=NOW)
    assert once.text == "once, every day; next: 2026-12-07 10:30:00 UTC" and len(once.next_runs) == 1


def test_a_crontab_that_rarely_fires_is_found_and_count_zero_reads_nothing():
    leap_monday = crontab(minute="0", hour="0", day_of_month="29", month_of_year="2", day_of_week="1", timezone="UTC")
    assert timing_preview(crontab=leap_monday, now=NOW, count=1).next_runs == (datetime(2044, 2, 29, tzinfo=UTC),)
    assert timing_preview(crontab=crontab(timezone="UTC"), now=NOW, count=0).next_runs == ()
