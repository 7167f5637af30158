/*
 * Job list: announce jobs created after the page was rendered, and keep its count current.
 *
 * The list carries [data-job-list] with data-arrivals-url (the staff-only JSON view
 * jobs/admin/arrivals.py) and data-since (when the page was rendered). Every data-interval ms,
 * while the tab is visible, the view is asked with the list's own query string (its filters and
 * search) how many jobs arrived since then and how many the list now holds; the answer fills the
 * notice [data-job-arrivals] ("3 new jobs — show", a link to the list's first page, which lists
 * them) and the count [data-job-count] ("12 jobs"). A 4xx answer (logged out, no permission, the
 * filters refused) stops the polling; a network error or a 5xx is tried again at the next tick.
 */
"use strict";
{
    const script = document.currentScript;
    const interval = Number(script.dataset.interval) || 3000;
    let timer = null;
    let stopped = false;

    function list() {
        return document.querySelector("[data-job-list][data-arrivals-url]");
    }

    function arrivalsUrl(element) {
        const query = new URLSearchParams(window.location.search);
        query.delete("p"); // the count is the list's, whatever its page
        query.set("since", element.dataset.since);
        return `${element.dataset.arrivalsUrl}?${query.toString()}`;
    }

    function render(answer) {
        const notice = document.querySelector("[data-job-arrivals]");
        if (notice) {
            const link = notice.querySelector("a");
            const text = `${answer.new} new ${answer.new === 1 ? "job" : "jobs"} — show`;
            if (link.textContent !== text) {
                link.textContent = text;
            }
            notice.hidden = answer.new === 0;
        }
        const count = document.querySelector("[data-job-count]");
        if (count && count.textContent !== answer.count_text) {
            count.textContent = answer.count_text;
        }
    }

    async function ask() {
        timer = null;
        const element = list();
        if (stopped || element === null) {
            return;
        }
        if (!document.hidden) {
            try {
                const response = await fetch(arrivalsUrl(element), {
                    credentials: "same-origin",
                    headers: {Accept: "application/json"},
                });
                if (response.status >= 400 && response.status < 500) {
                    stopped = true;
                    return;
                }
                if (response.ok) {
                    render(await response.json());
                }
            } catch (error) {
                // A network hiccup or a server restart: the next tick asks again.
            }
        }
        schedule();
    }

    function schedule() {
        if (!stopped && timer === null) {
            timer = window.setTimeout(ask, interval);
        }
    }

    document.addEventListener("visibilitychange", () => {
        if (!document.hidden && timer !== null) {
            window.clearTimeout(timer);
            timer = null;
            ask(); // back on the tab: at once
        }
    });
    window.addEventListener("pagehide", () => {
        window.clearTimeout(timer);
        timer = null;
    });
    window.addEventListener("pageshow", (event) => {
        if (event.persisted) {
            schedule();
        }
    });

    if (list() !== null) {
        schedule();
    }
}
