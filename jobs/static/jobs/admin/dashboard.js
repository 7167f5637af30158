// The jobs dashboard: polls GET /api/v1/stats/ (the admin session's cookie goes along) every few
// seconds and fills the page: tiles, tables, and the finished-per-minute chart as inline SVG. Times
// in the admin's one format (jobs/admin/when.js, loaded first).
(function () {
  "use strict";
  const root = document.querySelector("[data-dashboard]");
  if (!root) return;
  const SVG = "http://www.w3.org/2000/svg";
  const STATUSES = ["succeeded", "failed", "revoked", "expired"];
  const interval = Number(root.dataset.interval) || 3000;

  const figure = (name, value) => { root.querySelector(`[data-figure="${name}"]`).textContent = value; };
  const percent = (rate) => (rate === null ? "–" : `${(rate * 100).toFixed(1)}%`);
  const seconds = (value) => (value >= 120 ? `${(value / 60).toFixed(1)} min` : `${value.toFixed(value < 10 ? 2 : 0)} s`);
  // The admin's job list filtered to the jobs behind a figure (the changelist's filter parameters).
  const jobList = (filters) => `${root.dataset.jobListUrl}?${new URLSearchParams(filters)}`;
  const cell = (row, value) => {
    const td = document.createElement("td");
    if (value instanceof Node) {
      td.appendChild(value);
    } else if (value !== null && typeof value === "object") {
      const link = document.createElement("a");
      link.href = jobList(value.filters);
      link.textContent = value.text;
      td.appendChild(link);
    } else {
      td.textContent = value;
    }
    row.appendChild(td);
  };
  const linked = (text, filters) => ({ text, filters });
  const when = window.taskhubWhen;

  function table(name, rows, columns) {
    const body = root.querySelector(`[data-table="${name}"]`);
    body.replaceChildren(...rows.map((item) => {
      const row = document.createElement("tr");
      columns.forEach((column) => cell(row, column(item)));
      return row;
    }));
    if (!rows.length) {
      const row = document.createElement("tr");
      cell(row, "none");
      body.appendChild(row);
    }
  }

  // Drawn in the chart's own pixels (its viewBox is its width): the chart fills its container at
  // any viewport without stretching its labels, and is drawn again when the window is resized.
  let lastSeries = null;
  function chart(series) {
    lastSeries = series;
    const svg = root.querySelector("[data-chart]");
    const [height, bottom] = [160, 18];
    const width = Math.max(200, Math.round(svg.getBoundingClientRect().width));
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const most = Math.max(1, ...series.map((m) => STATUSES.reduce((sum, s) => sum + m[s], 0)));
    const step = width / series.length;
    const parts = [];
    series.forEach((minute, index) => {
      let top = height - bottom;
      STATUSES.forEach((status) => {
        if (!minute[status]) return;
        const barHeight = (minute[status] / most) * (height - bottom - 12);
        top -= barHeight;
        const bar = document.createElementNS(SVG, "rect");
        bar.setAttribute("class", `dashboard-bar dashboard-bar--${status}`);
        bar.setAttribute("x", (index * step + 1).toFixed(1));
        bar.setAttribute("y", top.toFixed(1));
        bar.setAttribute("width", Math.max(1, step - 2).toFixed(1));
        bar.setAttribute("height", barHeight.toFixed(1));
        bar.dataset.minute = minute.minute;
        bar.dataset.count = minute[status];
        const title = document.createElementNS(SVG, "title");
        title.textContent = `${when.text(minute.minute)}: ${minute[status]} ${status}`;
        bar.appendChild(title);
        parts.push(bar);
      });
    });
    const axis = document.createElementNS(SVG, "line");
    axis.setAttribute("class", "dashboard-axis");
    axis.setAttribute("x1", "0");
    axis.setAttribute("x2", String(width));
    axis.setAttribute("y1", String(height - bottom));
    axis.setAttribute("y2", String(height - bottom));
    parts.push(axis);
    [["-60 min", 0, "start"], ["now", width, "end"], [`max ${most}/min`, width, "end"]].forEach(([text, x, anchor], i) => {
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("class", "dashboard-axis-label");
      label.setAttribute("x", String(x));
      label.setAttribute("y", String(i === 2 ? 10 : height - 4));
      label.setAttribute("text-anchor", anchor);
      label.textContent = text;
      parts.push(label);
    });
    svg.replaceChildren(...parts);
    svg.dataset.total = series.reduce((sum, m) => sum + STATUSES.reduce((s, k) => s + m[k], 0), 0);
  }

  function show(stats) {
    const sum = (key) => stats.queues.reduce((total, queue) => total + queue[key], 0);
    figure("pending", sum("pending"));
    figure("running", sum("running"));
    figure("hour-finished", stats.last_hour.finished);
    figure("hour-failure-rate", percent(stats.last_hour.failure_rate));
    figure("day-finished", stats.last_day.finished);
    figure("day-failure-rate", percent(stats.last_day.failure_rate));
    figure("workers", stats.workers === null ? "–" : stats.workers.length);
    const byStatus = (q, status) => linked(q[status], { queue: q.queue, status__exact: status });
    table("queues", stats.queues, [
      (q) => linked(q.queue, { queue: q.queue }), (q) => byStatus(q, "pending"), (q) => byStatus(q, "running"),
      (q) => (q.pending ? seconds(q.oldest_pending_seconds) : "–"),
      (q) => byStatus(q, "succeeded"), (q) => byStatus(q, "failed"), (q) => byStatus(q, "revoked"),
      (q) => byStatus(q, "expired"),
    ]);
    const ofTask = (t) => ({ celery_task_name: t.task });
    table("slowest", stats.slowest_tasks, [
      (t) => linked(t.task, ofTask(t)), (t) => linked(t.runs, ofTask(t)),
      (t) => seconds(t.p50_seconds), (t) => seconds(t.p95_seconds),
    ]);
    table("workers", stats.workers || [], [
      (w) => w.worker, (w) => w.queues.join(", "),
      (w) => linked(w.running, { worker: w.worker, status__exact: "running" }),
      (w) => when.element(w.last_seen),
    ]);
    chart(stats.finished_per_minute);
  }

  window.addEventListener("resize", () => { if (lastSeries) chart(lastSeries); });

  const status = root.querySelector("[data-dashboard-status]");
  async function poll() {
    try {
      const response = await fetch(root.dataset.statsUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
      const body = await response.json();
      if (!response.ok) throw new Error(body.message || response.statusText);
      show(body);
      status.textContent = `Updated ${when.text(new Date())}; refreshes every ${interval / 1000} s.`;
      status.classList.remove("dashboard-status--error");
    } catch (error) {
      status.textContent = `Could not refresh: ${error.message}`;
      status.classList.add("dashboard-status--error");
    } finally {
      window.setTimeout(poll, interval);
    }
  }
  poll();
})();
