#!/usr/bin/env bash
# Both legs, as CI runs them (`make test-legs`): the suite on the default leg (Python 3.11 + Django 5.2
# LTS), then the fault suite (default leg, mostly waiting on a minute of staleness) beside the whole
# suite on the Django 6 leg (Python 3.12 + Django 6.0, its own test database, Redis db and var dir).
# Ends with each run's pytest summary and wall time; exits non-zero if any of them failed.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=var/test-legs
rm -rf "$logs" && mkdir -p "$logs"
summary() { grep -aE '[0-9]+ (passed|failed|errors?)\b.* in [0-9.]+s' "$1" | tail -n 1 | sed -E 's/^=+ //; s/ =+$//'; }

start=$SECONDS
make --no-print-directory test-suite 2>&1 | tee "$logs/django52.log"
suite52=${PIPESTATUS[0]}
time52=$((SECONDS - start))

start=$SECONDS
echo "==> the suite on Django 6.0 runs beside the fault suite: its output follows the fault suite's ($logs/django60.log)"
# Its own database and Redis db even when TEST_DATABASE_URL / TEST_BROKER_URL point the default leg elsewhere.
(TEST_DATABASE_URL="${TEST6_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/taskhub_django6}" \
  TEST_BROKER_URL="${TEST6_BROKER_URL:-redis://127.0.0.1:6379/13}" \
  make --no-print-directory test-django6 >"$logs/django60.log" 2>&1; echo $? >"$logs/django60.rc"; echo $((SECONDS - start)) >"$logs/django60.seconds") &
leg6=$!
make --no-print-directory test-faults 2>&1 | tee "$logs/faults.log"
faults=${PIPESTATUS[0]}
time_faults=$((SECONDS - start))
wait "$leg6"
suite60=$(cat "$logs/django60.rc")
cat "$logs/django60.log"
echo
echo "==> both legs (wall time of the parallel part: $((SECONDS - start))s)"
printf 'Django 5.2 LTS, Python 3.11, the suite   (%4ss, exit %s): %s\n' "$time52" "$suite52" "$(summary "$logs/django52.log")"
printf 'Django 5.2 LTS, Python 3.11, fault suite (%4ss, exit %s): %s\n' "$time_faults" "$faults" "$(summary "$logs/faults.log")"
printf 'Django 6.0, Python 3.12, the suite       (%4ss, exit %s): %s\n' "$(cat "$logs/django60.seconds")" "$suite60" "$(summary "$logs/django60.log")"
[ "$suite52" = 0 ] && [ "$faults" = 0 ] && [ "$suite60" = 0 ]
