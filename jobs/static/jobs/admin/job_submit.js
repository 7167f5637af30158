/*
 * Job admin, "Submit a job": show the chosen task's description and parameters (every task's
 * table is in the page, hidden), and name its defaults in the empty priority and retries fields.
 */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
    const task = document.getElementById("id_task");
    if (!task) {
        return;
    }
    // The submit page's priority field, or the schedule page's job priority.
    const priority = document.getElementById("id_priority") || document.getElementById("id_job_priority");
    const retries = document.getElementById("id_max_retries");
    const defaultPriority = priority ? priority.querySelector('option[value=""]') : null;
    const defaultLabel = defaultPriority ? defaultPriority.textContent : "";

    function show() {
        let policy = null;
        for (const info of document.querySelectorAll(".job-task-info")) {
            info.hidden = info.dataset.task !== task.value;
            if (!info.hidden) {
                policy = info.querySelector(".job-task-info__policy");
            }
        }
        if (defaultPriority) {
            defaultPriority.textContent = policy ? `${defaultLabel} (${policy.dataset.priority})` : defaultLabel;
        }
        if (retries) {
            retries.placeholder = policy ? policy.dataset.maxRetries : "";
        }
    }

    task.addEventListener("change", show);
    show();
});
