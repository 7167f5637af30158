/*
 * A workflow's admin page: keep its DAG and figures current without a reload.
 *
 * [data-workflow-dag] holds the DAG (inline SVG drawn by the server, each step's box coloured by its
 * status) and carries the live view's URL (data-live-url), the poll intervals in ms (data-interval while
 * the workflow can still change by itself, data-active; data-idle-interval once it cannot: finished, it
 * changes only when someone retries it, from the API or another tab). The live view is asked at them; its answer ({status, progress, fields: {name: text}, dag: svg or null, active}) replaces
 * the SVG (rendered and escaped by the server, jobs/admin/workflows.py) and the read-only fields' text
 * (status, progress, steps, finished at) in place.
 *
 * Polling slows down once the workflow is finished and none of its steps runs or is released; it stops
 * on a 4xx answer (logged out, no permission) and pauses while the tab is hidden. Scripts come from this server
 * only (the Content-Security-Policy): no inline script.
 */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
    // The admin puts this script in the page's head: the parts exist once the document is parsed.
    const root = document.querySelector("[data-workflow-dag]");
    if (!root || !root.dataset.liveUrl) return;
    const interval = Number(root.dataset.interval) || 2000;
    const idleInterval = Number(root.dataset.idleInterval) || 15000;

    function next() {
        window.setTimeout(poll, root.dataset.active === "true" ? interval : idleInterval);
    }

    // The value box of a read-only field on the admin's change form (as jobs/admin/job_live.js finds it).
    function fieldValue(name) {
        return document.querySelector(
            `.fieldBox.field-${name} > .readonly, .form-row.field-${name} > div > .flex-container > .readonly`,
        );
    }

    function render(workflow) {
        if (workflow.dag !== null && root.innerHTML !== workflow.dag) {
            root.innerHTML = workflow.dag;
        }
        for (const [name, text] of Object.entries(workflow.fields || {})) {
            const element = fieldValue(name);
            if (element && element.textContent !== text) {
                element.textContent = text;
            }
        }
        root.dataset.status = workflow.status;
        root.dataset.active = workflow.active ? "true" : "false";
    }

    async function poll() {
        if (document.hidden) {
            document.addEventListener("visibilitychange", poll, {once: true});
            return;
        }
        try {
            const response = await fetch(root.dataset.liveUrl, {
                credentials: "same-origin",
                headers: {Accept: "application/json"},
            });
            if (response.status >= 400 && response.status < 500) {
                return; // logged out or no permission: no request can succeed
            }
            if (response.ok) {
                render(await response.json());
            }
        } catch (error) {
            // The server is restarting or the network dropped: the next tick tries again.
        }
        next();
    }

    next();
});
