/*
 * Schedule admin page: show the interval or the crontab fields as chosen, hide the job's options
 * for a maintenance task, and keep the timing preview ("every 15 minutes on weekdays,
 * Europe/Paris; next: ...") up to date: the server computes it (the preview view), so the page
 * and the list read the same words.
 */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("schedule_form");
    const output = document.getElementById("schedule-preview");
    if (!form || !output) {
        return;
    }
    const timingFields = ["timing", "every", "period", "minute", "hour", "day_of_month", "month_of_year",
        "day_of_week", "timezone", "start_time", "expires", "one_off", "enabled"];
    const note = document.querySelector(".schedule-maintenance-note");
    const maintenance = new Set(note ? note.dataset.maintenanceTasks.split(" ") : []);
    const task = document.getElementById("id_task");

    function chosenTiming() {
        const checked = form.querySelector('input[name="timing"]:checked');
        return checked ? checked.value : "interval";
    }

    function showTiming() {
        const chosen = chosenTiming();
        for (const row of form.querySelectorAll("[data-timing]")) {
            row.hidden = row.dataset.timing !== chosen;
        }
    }

    function showJobOptions() {
        const isMaintenance = task && maintenance.has(task.value);
        if (note) {
            note.hidden = !isMaintenance;
        }
        for (const name of ["owner", "job_priority"]) {
            const row = form.querySelector(`.field-${name}`);
            if (row) {
                row.hidden = isMaintenance;
            }
        }
    }

    let pending = null;
    let sequence = 0;
    async function refresh() {
        const params = new URLSearchParams();
        for (const name of timingFields) {
            const field = form.elements.namedItem(name);
            if (!field) {
                continue;
            }
            if (field instanceof RadioNodeList) {
                params.set(name, field.value);
            } else if (field.type === "checkbox") {
                if (field.checked) {
                    params.set(name, "on");
                }
            } else {
                params.set(name, field.value);
            }
        }
        const mine = ++sequence;
        try {
            const response = await fetch(`${output.dataset.previewUrl}?${params}`, {
                headers: {Accept: "application/json"},
                credentials: "same-origin",
            });
            const body = await response.json();
            if (mine !== sequence) {
                return; // a later change answered first
            }
            if (response.ok) {
                output.textContent = body.text;
                output.classList.remove("schedule-preview--error");
            } else {
                const problems = Object.entries(body.errors || {}).map(([field, messages]) => `${field}: ${messages.join(" ")}`);
                output.textContent = problems.join(" ") || `HTTP ${response.status}`;
                output.classList.add("schedule-preview--error");
            }
        } catch (error) {
            if (mine === sequence) {
                output.textContent = `Preview unavailable (${error.message}).`;
                output.classList.add("schedule-preview--error");
            }
        }
    }

    function changed(event) {
        const name = event.target.name;
        if (name === "timing") {
            showTiming();
        }
        if (name === "task") {
            showJobOptions();
        }
        if (timingFields.includes(name)) {
            clearTimeout(pending);
            pending = setTimeout(refresh, 250);
        }
    }

    form.addEventListener("input", changed);
    form.addEventListener("change", changed);
    showTiming();
    showJobOptions();
});
