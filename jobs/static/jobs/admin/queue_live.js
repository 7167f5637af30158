/*
 * Queue control in the admin: keep the queues' state and figures current without a reload.
 *
 * [data-queue-live] carries the live view's URL (data-live-url) and the poll interval in ms
 * (data-interval); on a queue's page it also names the queue (data-queue-page), so the answer has
 * that queue's audit trail too. Every element with data-queue is a part of a queue:
 * data-queue-figure (pending, held, running, oldest, rate_limit: text) or data-queue-part (state,
 * audit: HTML rendered and escaped by the server, jobs/admin/queue_state.py). On a queue's page the
 * Pause / Resume forms ([data-queue-control]) follow whether the queue is paused.
 *
 * Polling pauses while the tab is hidden and stops on a 4xx answer (logged out, no permission).
 */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
    // The admin puts this script in the page's head: the parts exist once the document is parsed.
    const root = document.querySelector("[data-queue-live]");
    if (!root || !root.dataset.liveUrl) return;
    const interval = Number(root.dataset.interval) || 3000;
    let refused = false;

    function render(queue) {
        for (const element of document.querySelectorAll(`[data-queue="${CSS.escape(queue.name)}"]`)) {
            const figure = element.dataset.queueFigure;
            const part = element.dataset.queuePart;
            if (figure && figure in queue && element.textContent !== String(queue[figure])) {
                element.textContent = String(queue[figure]);
            } else if (part === "state" && element.innerHTML !== queue.state) {
                element.innerHTML = queue.state;
            }
        }
        if (root.dataset.queuePage === queue.name) {
            for (const form of document.querySelectorAll("[data-queue-control]")) {
                form.hidden = (form.dataset.queueControl === "pause") === queue.paused;
            }
        }
    }

    async function poll() {
        if (refused) return;
        if (document.hidden) {
            document.addEventListener("visibilitychange", poll, {once: true});
            return;
        }
        const url = new URL(root.dataset.liveUrl, window.location.href);
        if (root.dataset.queuePage) url.searchParams.set("queue", root.dataset.queuePage);
        try {
            const response = await fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}});
            if (response.status >= 400 && response.status < 500) {
                refused = true;
                return;
            }
            if (response.ok) {
                const body = await response.json();
                body.queues.forEach(render);
                const audit = document.querySelector(`[data-queue-part="audit"]`);
                if (audit && body.audit_trail !== undefined && audit.innerHTML !== body.audit_trail) {
                    audit.innerHTML = body.audit_trail;
                }
            }
        } catch (error) {
            // The server is restarting or the network dropped: the next tick tries again.
        }
        window.setTimeout(poll, interval);
    }

    poll();
});
