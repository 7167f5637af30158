/*
 * Job admin: keep the status badges and progress bars of active jobs current without a reload.
 *
 * Every element with data-job-id and data-job-active="true" is watched. Every few seconds the
 * staff-only JSON view (data-progress-url on this script tag) is asked about those jobs and the
 * elements are updated in place. Polling stops once nothing on the page is active any more,
 * and on a 4xx answer (logged out, no permission). It pauses while the tab is hidden.
 */
"use strict";
{
    const script = document.currentScript;
    const progressUrl = script.dataset.progressUrl;
    const interval = Number(script.dataset.interval) || 2000;
    let timer = null;
    let refused = false;

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

    function renderBadge(element, job) {
        replaceModifier(element, "job-badge", job.badge);
        element.textContent = job.label;
    }

    function renderProgress(element, job) {
        replaceModifier(element, "job-progress", job.badge);
        element.setAttribute("aria-valuenow", String(job.progress));
        element.title = job.message;
        const fill = element.querySelector(".job-progress__fill");
        if (fill) {
            fill.style.width = `${job.progress}%`;
        }
        const percent = element.querySelector(".job-progress__percent");
        if (percent) {
            percent.textContent = `${job.progress}%`;
        }
        const message = element.querySelector(".job-progress__message");
        if (message) {
            message.textContent = job.message;
        }
    }

    function render(job) {
        for (const element of document.querySelectorAll(`[data-job-id="${CSS.escape(job.id)}"]`)) {
            if (element.dataset.jobPart === "badge") {
                renderBadge(element, job);
            } else if (element.dataset.jobPart === "progress") {
                renderProgress(element, job);
            }
            element.dataset.jobActive = job.active ? "true" : "false";
        }
    }

    function forget(id) {
        // Deleted (or no longer visible): stop asking about it.
        for (const element of document.querySelectorAll(`[data-job-id="${CSS.escape(id)}"]`)) {
            element.dataset.jobActive = "false";
        }
    }

    async function poll() {
        timer = null;
        const ids = watchedIds();
        if (!ids.length) {
            return; // nothing active on the page: stop polling
        }
        if (!document.hidden) {
            try {
                const url = `${progressUrl}?ids=${encodeURIComponent(ids.join(","))}`;
                const response = await fetch(url, {
                    credentials: "same-origin",
                    headers: {Accept: "application/json"},
                });
                if (response.status >= 400 && response.status < 500) {
                    refused = true;
                    return; // logged out or not allowed: polling cannot succeed
                }
                if (response.ok) {
                    const body = await response.json();
                    const seen = new Set();
                    for (const job of body.jobs) {
                        seen.add(job.id);
                        render(job);
                    }
                    ids.filter((id) => !seen.has(id)).forEach(forget);
                }
            } catch (error) {
                // A network hiccup or a server restart: try again at the next tick.
            }
        }
        schedule();
    }

    function schedule() {
        if (timer === null) {
            timer = window.setTimeout(poll, interval);
        }
    }

    document.addEventListener("visibilitychange", () => {
        if (!document.hidden && !refused && timer === null && watchedIds().length) {
            schedule();
        }
    });

    if (progressUrl) {
        schedule();
    }
}
