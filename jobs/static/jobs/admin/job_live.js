/*
 * Job admin: keep the jobs on the page current without a reload.
 *
 * Every element with data-job-id is a part of a job (data-job-part: badge, progress, attempt,
 * run, title, attempts, timeline); the job page also has [data-job-page] and Cancel / Retry buttons
 * ([data-job-operation]). Jobs with an element marked data-job-active="true" are watched.
 *
 * Changes arrive on the live-progress streams (server-sent events; EventSource sends the session
 * cookie): a job page follows its job's stream (data-stream-url on [data-job-page], through
 * followJob from jobs/stream.js), the list follows the list stream (data-stream-url on
 * [data-job-list], narrowed by the list's priority and task filters). An event only says which job
 * changed: the page then asks the staff-only JSON view (data-progress-url on this script tag) for
 * the admin state of the jobs it shows that changed (detail=1 on a job page: the server-rendered
 * fields and timeline) and hands each answer to renderJob(). One request at a time, for every job
 * that changed meanwhile; no timer runs while the stream is healthy. A stream is open only while
 * something on the page is active and the tab is visible; it is closed when the page is left.
 *
 * Polling is the fallback: without EventSource, or once a stream could not be opened (or dropped)
 * several times in a row, the JSON view is asked about the watched jobs every data-interval ms, as
 * before. Polling stops once nothing on the page is active any more, and on a 4xx answer (logged
 * out, no permission); it pauses while the tab is hidden.
 *
 * renderJob(state) is the one place a job's state reaches the page
 * (window.taskhubJobAdmin.renderJob). A state is
 * {id, status, badge, label, progress, message, active, attempt, attempt_title, run, held} and, on a
 * job page, also {title, fields: {name: html}, attempts: html, timeline: html, can_cancel, can_retry}; parts
 * missing from a state are left as they are. HTML in a state is rendered and escaped by the
 * server (jobs/admin/job_state.py, page.py).
 */
"use strict";
{
    const script = document.currentScript;
    const progressUrl = script.dataset.progressUrl;
    const interval = Number(script.dataset.interval) || 2000;
    // A stream that failed this many connections in a row (retried a second apart) gives way to polling.
    const STREAM_OPTIONS = {maxFailures: 3, retryMs: 1000};
    let refused = false; // the JSON view answered 4xx: no request can succeed
    let stopStream = null; // closes the open stream
    let polling = false; // the stream gave up: poll instead (until the page is reloaded)
    let timer = null; // the poller's next tick
    const changed = new Set(); // jobs a stream said changed, not asked about yet
    let asking = false;

    function pageJobId() {
        const page = document.querySelector("[data-job-page]");
        return page ? page.dataset.jobPage : null;
    }

    function watchedIds() {
        const ids = new Set();
        for (const element of document.querySelectorAll('[data-job-id][data-job-active="true"]')) {
            ids.add(element.dataset.jobId);
        }
        return [...ids];
    }

    function replaceModifier(element, block, modifier) {
        for (const name of [...element.classList]) {
            if (name.startsWith(`${block}--`)) {
                element.classList.remove(name);
            }
        }
        element.classList.add(`${block}--${modifier}`);
    }

    function setText(element, text) {
        if (element && element.textContent !== text) {
            element.textContent = text;
        }
    }

    function setHtml(element, html) {
        if (element && element.innerHTML !== html) {
            element.innerHTML = html;
        }
    }

    // As setHtml, keeping the <details> the reader opened (an attempt's traceback) open: the new
    // HTML's n-th <details> is opened when the n-th one shown was.
    function setHtmlKeepingOpen(element, html) {
        if (!element) {
            return;
        }
        const next = document.createElement("template");
        next.innerHTML = html;
        const opened = [...element.querySelectorAll("details")].map((details) => details.open);
        next.content.querySelectorAll("details").forEach((details, index) => {
            details.open = Boolean(opened[index]);
        });
        const wrapper = document.createElement("div");
        wrapper.appendChild(next.content.cloneNode(true));
        setHtml(element, wrapper.innerHTML);
    }

    function renderProgress(element, job) {
        replaceModifier(element, "job-progress", job.badge);
        element.classList.toggle("job-progress--held", Boolean(job.held)); // why it waits: job.message
        element.setAttribute("aria-valuenow", String(job.progress));
        element.title = job.message;
        const fill = element.querySelector(".job-progress__fill");
        if (fill) {
            fill.style.width = `${job.progress}%`;
        }
        setText(element.querySelector(".job-progress__percent"), `${job.progress}%`);
        setText(element.querySelector(".job-progress__message"), job.message);
    }

    function renderTitle(element, job) {
        if (element.tagName === "H2" && element.textContent !== job.title) {
            document.title = document.title.replace(element.textContent, job.title);
        }
        setText(element, job.title);
    }

    // The value box of a read-only field on the admin's change form (one per row, or in a
    // row of several: .fieldBox).
    function fieldValue(name) {
        return document.querySelector(
            `.fieldBox.field-${name} > .readonly, .form-row.field-${name} > div > .flex-container > .readonly`,
        );
    }

    function renderJob(job) {
        for (const element of document.querySelectorAll(`[data-job-id="${CSS.escape(job.id)}"]`)) {
            const part = element.dataset.jobPart;
            if (part === "badge") {
                replaceModifier(element, "job-badge", job.badge);
                setText(element, job.label);
            } else if (part === "progress") {
                renderProgress(element, job);
            } else if (part === "attempt" && job.attempt !== undefined) {
                setText(element, job.attempt);
                element.title = job.attempt_title;
            } else if (part === "run" && job.run !== undefined) {
                setText(element, job.run);
            } else if (part === "title" && job.title !== undefined) {
                renderTitle(element, job);
            } else if (part === "timeline" && job.timeline !== undefined) {
                setHtml(element, job.timeline);
            } else if (part === "attempts" && job.attempts !== undefined) {
                setHtmlKeepingOpen(element, job.attempts);
            }
            element.dataset.jobActive = job.active ? "true" : "false";
        }
        if (job.id !== pageJobId()) {
            return;
        }
        for (const [name, html] of Object.entries(job.fields || {})) {
            setHtml(fieldValue(name), html);
        }
        for (const operation of ["cancel", "retry"]) {
            const allowed = job[`can_${operation}`];
            const button = document.querySelector(`[data-job-operation="${operation}"]`);
            if (button && allowed !== undefined) {
                button.hidden = !allowed;
            }
        }
    }

    function forget(id) {
        // Deleted (or no longer visible): stop asking about it.
        for (const element of document.querySelectorAll(`[data-job-id="${CSS.escape(id)}"]`)) {
            element.dataset.jobActive = "false";
        }
    }

    function pollUrl(ids) {
        const page = pageJobId();
        const detail = page !== null && ids.length === 1 && ids[0] === page ? "&detail=1" : "";
        return `${progressUrl}?ids=${encodeURIComponent(ids.join(","))}${detail}`;
    }

    // Ask the JSON view about these jobs and render the answers. Whether it answered (an error
    // status of 500 or more is no answer; a network error throws).
    async function load(ids) {
        const response = await fetch(pollUrl(ids), {
            credentials: "same-origin",
            headers: {Accept: "application/json"},
        });
        if (response.status >= 400 && response.status < 500) {
            refused = true; // logged out or not allowed
            return true;
        }
        if (response.ok) {
            const body = await response.json();
            const seen = new Set();
            for (const job of body.jobs) {
                seen.add(job.id);
                renderJob(job);
            }
            ids.filter((id) => !seen.has(id)).forEach(forget);
        }
        return response.ok;
    }

    function wanted() {
        return !refused && !document.hidden && watchedIds().length > 0;
    }

    // --- following the streams ---

    // A stream said these jobs changed: ask about them (coalesced: one request at a time).
    function refresh(ids) {
        ids.forEach((id) => changed.add(id));
        askAboutChanged();
    }

    async function askAboutChanged() {
        if (asking || refused || document.hidden || !changed.size) {
            return; // the request in flight asks again when it is done; a hidden tab when it shows
        }
        const ids = [...changed];
        changed.clear();
        asking = true;
        let answered = false;
        try {
            answered = await load(ids);
        } catch (error) {
            // A network hiccup: the stream's next event or reconnection asks again.
        } finally {
            asking = false;
        }
        if (answered) {
            sync(); // e.g. close the stream once nothing on the page is active
        }
        askAboutChanged();
    }

    function shown(id) {
        return document.querySelector(`[data-job-id="${CSS.escape(id)}"]`) !== null;
    }

    // The list stream: every change of the jobs the user may see that match its filters. EventSource
    // reconnects by itself after a drop; each connection starts with the active jobs only, so the
    // watched ones are asked about once per connection (a job may have finished meanwhile).
    function followList(url) {
        let source = null;
        let retry = null;
        let failures = 0;
        function connect() {
            retry = null;
            source = new EventSource(url);
            source.addEventListener("open", () => {
                failures = 0;
                refresh(watchedIds());
            });
            source.addEventListener("state", (event) => {
                const job = JSON.parse(event.data);
                if (shown(job.id)) {
                    refresh([job.id]);
                }
            });
            source.onerror = () => {
                failures += 1;
                const closed = source.readyState === EventSource.CLOSED; // refused: the browser gave up
                if (failures >= STREAM_OPTIONS.maxFailures) {
                    fallBack();
                } else if (closed) {
                    retry = window.setTimeout(connect, STREAM_OPTIONS.retryMs);
                }
            };
        }
        connect();
        return () => {
            if (source) {
                source.close();
            }
            window.clearTimeout(retry);
            source = retry = null;
        };
    }

    // The stream of this page: [data-job-page] (a job's) or [data-job-list] (the list's), data-stream-url.
    function streamUrl() {
        const element = document.querySelector("[data-job-page], [data-job-list]");
        return element ? element.dataset.streamUrl : undefined;
    }

    function streamsWork() {
        return typeof window.EventSource === "function" && window.taskhub !== undefined && Boolean(streamUrl());
    }

    function openStream() {
        const id = pageJobId();
        if (id === null) {
            return followList(streamUrl());
        }
        const onState = (state) => refresh([state.id]);
        const onEnd = (state) => {
            stopStream = null; // the stream ended after a terminal state
            if (state && state.deleted) {
                forget(id);
            }
        };
        // followJob calls poll() once the stream gave up: this page's poller takes over.
        return window.taskhub.followJob(streamUrl(), onState, onEnd, {...STREAM_OPTIONS, poll: fallBack});
    }

    function closeStream() {
        if (stopStream !== null) {
            stopStream();
            stopStream = null;
        }
    }

    // --- the fallback: polling ---

    function fallBack() {
        polling = true;
        closeStream();
        window.clearTimeout(timer);
        timer = window.setTimeout(poll, 0); // at once: the failing stream may have missed changes
    }

    async function poll() {
        timer = null;
        if (!wanted()) {
            return; // nothing active, refused, or hidden: sync() resumes when the tab shows again
        }
        try {
            await load(watchedIds());
        } catch (error) {
            // A network hiccup or a server restart: try again at the next tick.
        }
        sync();
    }

    // Start or stop whatever brings changes, for what the page shows now.
    function sync() {
        if (!wanted()) {
            closeStream();
        } else if (polling || !streamsWork()) {
            polling = true;
            if (timer === null) {
                timer = window.setTimeout(poll, interval);
            }
        } else if (stopStream === null) {
            stopStream = openStream();
        }
    }

    document.addEventListener("visibilitychange", () => {
        sync();
        askAboutChanged();
    });
    window.addEventListener("pagehide", () => {
        closeStream();
        window.clearTimeout(timer);
        timer = null;
    });
    window.addEventListener("pageshow", (event) => {
        if (event.persisted) {
            sync(); // back from the back/forward cache
        }
    });

    window.taskhubJobAdmin = {renderJob};
    if (progressUrl) {
        sync();
    }
}
