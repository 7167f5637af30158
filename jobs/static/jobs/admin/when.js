/*
 * The admin's one time format in the browser, as jobs/admin/rendering.when_html renders it on the
 * server: local time of the site's zone (data-time-zone on this script tag: TIME_ZONE) with seconds
 * and the zone named, "2026-12-06 10:41:07 UTC", the value itself on hover.
 *
 * window.taskhubWhen.text(value) -> that text; .element(value) -> a <time class="job-when"> with
 * it (datetime and title: the value). value: an ISO string or a Date.
 */
"use strict";
{
    const zone = document.currentScript.dataset.timeZone || "UTC";
    const format = new Intl.DateTimeFormat("en-GB", {
        timeZone: zone,
        year: "numeric",
        month: "2-digit",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        second: "2-digit",
        hourCycle: "h23",
        timeZoneName: "short",
    });

    function text(value) {
        const parts = {};
        for (const part of format.formatToParts(new Date(value))) {
            parts[part.type] = part.value;
        }
        return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${parts.timeZoneName}`;
    }

    function element(value) {
        const time = document.createElement("time");
        const iso = value instanceof Date ? value.toISOString() : String(value);
        time.className = "job-when";
        time.dateTime = iso;
        time.title = iso;
        time.textContent = text(value);
        return time;
    }

    window.taskhubWhen = {text, element};
}
