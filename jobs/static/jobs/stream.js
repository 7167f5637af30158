/* taskhub live progress: follow a job's server-sent event stream (GET /api/v1/jobs/{id}/stream/).
 *
 *   const stop = followJob("/api/v1/jobs/" + id + "/stream/", (state) => render(state), (final) => done(final),
 *                          {poll: () => fetch("/api/v1/jobs/" + id + "/").then((r) => r.json())});
 *
 * onState(state) gets every state (the current one at once, then each change); onEnd(state) once, with the
 * last state, after a terminal status (succeeded, failed, revoked, expired) or when the job was deleted. EventSource
 * sends the session cookie, not an Authorization header: use it where the user is logged in (the admin).
 * A dropped connection is reopened (the browser sends Last-Event-ID; every connection starts with the
 * current state). Without EventSource, or after `maxFailures` failed connections in a row, `options.poll`
 * (a function returning a promise of the job's JSON, e.g. the API's detail) is called every `pollMs`.
 * Returns a function that stops following.
 */
(function (global) {
  "use strict";

  const TERMINAL = ["succeeded", "failed", "revoked", "expired"];

  function followJob(url, onState, onEnd, options) {
    const opts = Object.assign({pollMs: 2000, maxFailures: 5, retryMs: 2000}, options || {});
    let source = null, timer = null, failures = 0, stopped = false, last = null;

    function stop() {
      stopped = true;
      if (source) source.close();
      if (timer) clearTimeout(timer);
      source = timer = null;
    }

    function deliver(state) {
      if (stopped || !state) return;
      last = state;
      onState(state);
      if (TERMINAL.indexOf(state.status) !== -1) finish(state);
    }

    function finish(state) {
      if (stopped) return;
      stop();
      if (onEnd) onEnd(state || last);
    }

    function poll() {
      if (stopped || !opts.poll) return;
      Promise.resolve(opts.poll()).then(deliver, () => undefined).finally(() => {
        if (!stopped) timer = setTimeout(poll, opts.pollMs);
      });
    }

    function connect() {
      if (stopped) return;
      if (typeof global.EventSource !== "function") return poll();
      source = new global.EventSource(url, {withCredentials: true});
      source.addEventListener("state", (event) => {
        failures = 0;
        deliver(JSON.parse(event.data));
      });
      source.addEventListener("end", (event) => {
        const data = JSON.parse(event.data);
        finish(data.deleted ? Object.assign({}, last, data) : last);
      });
      source.onerror = () => {
        if (stopped) return;
        failures += 1;
        if (source.readyState === global.EventSource.CLOSED) {
          // A refused stream (401, 404) or an answer that is not an event stream: the browser gives up.
          source = null;
          if (failures >= opts.maxFailures) return poll();
          timer = setTimeout(connect, opts.retryMs);
        } else if (failures >= opts.maxFailures) {
          source.close();
          source = null;
          poll();
        }
        // Otherwise EventSource reconnects by itself, with Last-Event-ID.
      };
    }

    connect();
    return stop;
  }

  global.taskhub = Object.assign(global.taskhub || {}, {followJob: followJob});
  global.followJob = followJob;
})(window);
