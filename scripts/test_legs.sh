#!/usr/bin/env bash
# Both legs, as CI runs them (`make test-legs`), side by side: the suite on the default leg (Python 3.11
# + Django 5.2 LTS), the whole suite on the Django 6 leg (Python 3.12 + Django 6.0) and the fault suite
# (default leg, mostly waiting on a minute of staleness), and the many-hosts bed (`make test-hosts`:
# network namespaces, mostly waiting on partitions; private servers). Each has its own test database, Redis db and
# var dir: a worker of one run must never take another run's messages (they share queue names).
# Ends with each run's pytest summary and wall time; exits non-zero if any of them failed.
# TEST_LEGS_SERIAL=1 runs them one after the other (a machine too small for three at once).
set -uo pipefail
cd "$(dirname "$0")/.."
logs=var/test-legs
rm -rf "$logs" && mkdir -p "$logs"
summary() { grep -aE '[0-9]+ (passed|failed|errors?)\b.* in [0-9.]+s' "$1" | tail -n 1 | sed -E 's/^=+ //; s/ =+$//'; }

# run NAME COMMAND...: runs it with its output in $logs/NAME.log, its exit status and wall time beside.
run() {
  local name=$1 start=$SECONDS
  shift
  "$@" >"$logs/$name.log" 2>&1
  echo $? >"$logs/$name.rc"
  echo $((SECONDS - start)) >"$logs/$name.seconds"
}

leg52() { make --no-print-directory test-suite; }
leg60() {
  TEST_DATABASE_URL="${TEST6_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/taskhub_django6}" \
    TEST_BROKER_URL="${TEST6_BROKER_URL:-redis://127.0.0.1:6379/13}" \
    make --no-print-directory test-django6
}
faults() {
  TEST_DATABASE_URL="${TESTF_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/taskhub_faults}" \
    TEST_BROKER_URL="${TESTF_BROKER_URL:-redis://127.0.0.1:6379/12}" \
    make --no-print-directory test-faults
}
hosts() {
  TEST_DATABASE_URL="${TESTH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/taskhub_hosts}" \
    TEST_BROKER_URL="${TESTH_BROKER_URL:-redis://127.0.0.1:6379/11}" \
    make --no-print-directory test-hosts
}

start=$SECONDS
if [ "${TEST_LEGS_SERIAL:-0}" = 1 ]; then
  run django52 leg52
  run django60 leg60
  run faults faults
  run hosts hosts
else
  echo "==> four runs side by side; their output follows as each ends ($logs/*.log)"
  run django52 leg52 &
  run django60 leg60 &
  run faults faults &
  run hosts hosts &
fi
for name in faults hosts django52 django60; do
  while [ ! -e "$logs/$name.seconds" ]; do sleep 5; done
  echo "==> $name"
  cat "$logs/$name.log"
done
wait

echo
echo "==> both legs (wall time: $((SECONDS - start))s)"
printf 'Django 5.2 LTS, Python 3.11, the suite   (%4ss, exit %s): %s\n' "$(cat "$logs/django52.seconds")" "$(cat "$logs/django52.rc")" "$(summary "$logs/django52.log")"
printf 'Django 5.2 LTS, Python 3.11, fault suite (%4ss, exit %s): %s\n' "$(cat "$logs/faults.seconds")" "$(cat "$logs/faults.rc")" "$(summary "$logs/faults.log")"
printf 'Django 5.2 LTS, Python 3.11, hosts bed   (%4ss, exit %s): %s\n' "$(cat "$logs/hosts.seconds")" "$(cat "$logs/hosts.rc")" "$(summary "$logs/hosts.log")"
printf 'Django 6.0, Python 3.12, the suite       (%4ss, exit %s): %s\n' "$(cat "$logs/django60.seconds")" "$(cat "$logs/django60.rc")" "$(summary "$logs/django60.log")"
[ "$(cat "$logs/django52.rc")" = 0 ] && [ "$(cat "$logs/faults.rc")" = 0 ] && [ "$(cat "$logs/hosts.rc")" = 0 ] &&
  [ "$(cat "$logs/django60.rc")" = 0 ]
