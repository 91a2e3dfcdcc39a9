// gitfleet's dashboard: live updates (server-sent events) and actions sent without leaving
// the page. Plain JavaScript, no build step; the pages work without it (forms post and
// redirect; reload to refresh).
(function () {
  "use strict";
  var body = document.body;
  var indicator = document.getElementById("live");

  function setLive(state) {
    if (!indicator) return;
    indicator.dataset.state = state;
    indicator.textContent = state === "on" ? "live" : state === "paused" ? "paused" : "connecting";
    indicator.title = state === "paused" ? "Live updates stopped: the connection dropped; retrying" : "Live updates";
  }

  function setField(root, name, value) {
    root.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) {
      if (el.textContent !== value) el.textContent = value;
      // A state's badge (a job's, a worker's, a sandbox's) takes the state's colour.
      if (el.classList.contains("st")) el.className = el.className.replace(/\bst-[a-z_]*(?=\s|$)/, "st-" + value);
    });
  }

  function showBox(root, name, on) {
    var el = root.querySelector('[data-box="' + name + '"]');
    if (el) el.classList.toggle("hidden", !on);
  }

  function applyJob(j) {
    document.querySelectorAll('[data-job="' + j.job_id + '"]').forEach(function (root) {
      setField(root, "status", j.status);
      setField(root, "attempts", j.attempts);
      setField(root, "worker", j.worker);
      setField(root, "error_kind", j.error_kind);
      if (!root.dataset.detail) return;
      setField(root, "error_message", j.error_message);
      setField(root, "result", j.result);
      setField(root, "started", j.started);
      setField(root, "finished", j.finished);
      showBox(root, "error", j.error_kind !== "");
      showBox(root, "result", j.result !== "");
      showBox(root, "pending", j.error_kind === "" && j.result === "");
      root.querySelectorAll("form[data-when]").forEach(function (f) {
        f.hidden = f.dataset.when.split(" ").indexOf(j.status) < 0;
      });
    });
  }

  function byData(root, attr, id) {
    return root.querySelector("tr[data-" + attr + '="' + (window.CSS ? CSS.escape(id) : id) + '"]');
  }

  // A worker's running jobs: a link to each, and how many are another organization's.
  function fillRunning(cell, w) {
    var shown = JSON.stringify([w.running, w.hidden, w.idle]);
    if (cell.dataset.shown === shown) return;
    cell.dataset.shown = shown;
    cell.textContent = "";
    function line(cls, text) {
      var el = document.createElement(cls === "muted" ? "span" : "div");
      el.className = cls;
      el.textContent = text;
      cell.appendChild(el);
      return el;
    }
    w.running.forEach(function (j) {
      var div = line("nowrap", "");
      var a = document.createElement("a");
      a.className = "mono";
      a.href = j.url;
      a.textContent = j.id;
      var detail = document.createElement("span");
      detail.className = "muted small";
      detail.textContent = j.detail;
      div.append(a, " ", detail);
    });
    if (w.hidden > 0) line("muted small", w.hidden + " of another organization");
    if (w.idle) line("muted", "—");
  }

  // The Workers page: each listed worker's row updated, or added (from the page's empty
  // row), and the rows of workers no longer listed removed.
  var WORKER_FIELDS = ["id", "host", "state", "drain_asked", "busy", "queues", "heartbeat", "started", "version"];
  function applyWorkers(rows) {
    var tbody = document.querySelector("table.workers tbody");
    var pattern = document.getElementById("worker-row");
    if (!tbody || !pattern) return;
    var listed = {};
    rows.forEach(function (w) {
      listed[w.id] = true;
      var tr = byData(tbody, "worker", w.id);
      if (!tr) {
        tr = pattern.content.querySelector("tr").cloneNode(true);
        tr.dataset.worker = w.id;
        tbody.insertBefore(tr, tbody.querySelector("tr[data-empty]"));
      }
      WORKER_FIELDS.forEach(function (k) { setField(tr, k, w[k]); });
      showBox(tr, "host", w.host !== "");
      tr.querySelectorAll("form[data-drain]").forEach(function (f) {
        var drain = f.dataset.drain === "drain";
        var url = drain ? w.drain_url : w.undrain_url;
        if (f.getAttribute("action") !== url) f.setAttribute("action", url);
        f.hidden = !(drain ? w.can_drain : w.can_undrain);
      });
      var cell = tr.querySelector("[data-running]");
      if (cell) fillRunning(cell, w);
    });
    tbody.querySelectorAll("tr[data-worker]").forEach(function (tr) {
      if (!listed[tr.dataset.worker]) tr.remove();
    });
    var empty = tbody.querySelector("tr[data-empty]");
    if (empty) empty.hidden = rows.length > 0;
  }

  // The Sandboxes page: the rows it lists whose sandbox changed; an ended one is marked
  // and loses its Release button.
  function applySandboxes(rows) {
    rows.forEach(function (s) {
      var tr = byData(document, "sandbox", s.id);
      if (!tr) return;
      ["status", "tier", "time_left", "uses", "errors"].forEach(function (k) { setField(tr, k, s[k]); });
      tr.classList.toggle("ended", !s.live);
      if (!s.live) tr.querySelectorAll("form[data-release]").forEach(function (f) { f.hidden = true; });
    });
  }

  var STATES = ["waiting", "delayed", "running", "done", "dead", "cancelled"];

  function applyTick(t) {
    (t.jobs || []).forEach(applyJob);
    if (t.queues) {
      var totals = {};
      STATES.forEach(function (s) { totals[s] = 0; });
      t.queues.forEach(function (q) {
        var row = document.querySelector('tr[data-queue="' + q.queue + '"]');
        STATES.forEach(function (s) {
          totals[s] += q[s] || 0;
          if (row) setField(row, s, String(q[s] || 0));
        });
      });
      STATES.forEach(function (s) {
        var el = document.querySelector('[data-total="' + s + '"]');
        if (el) el.textContent = String(totals[s]);
      });
    }
    if (t.workers) {
      ["live", "busy", "slots"].forEach(function (k) {
        var el = document.querySelector('[data-workers="' + k + '"]');
        if (el) el.textContent = String(t.workers[k]);
      });
    }
    if (t.worker_rows) applyWorkers(t.worker_rows);
    if (t.sandbox_rows) applySandboxes(t.sandbox_rows);
    body.dataset.liveSeq = String(t.seq);
  }

  var source = null;
  function connect() {
    var url = body.dataset.live;
    if (!url || !window.EventSource) return;
    source = new EventSource(url);
    source.onopen = function () { setLive("on"); };
    source.onerror = function () {
      setLive("paused");
      // A closed stream (signed out, gateway gone) is not retried by the browser itself.
      if (source.readyState === EventSource.CLOSED) {
        source = null;
        setTimeout(connect, 5000);
      }
    };
    source.addEventListener("tick", function (e) {
      setLive("on");
      try { applyTick(JSON.parse(e.data)); } catch (err) { /* a bad update is skipped */ }
    });
  }

  // Actions (retry, cancel) are posted from the page, which then follows the job live.
  document.querySelectorAll("form.js-action").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var button = form.querySelector("button");
      var flash = document.getElementById("flash");
      if (button) button.disabled = true;
      fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: { "X-Requested-With": "fetch" },
        credentials: "same-origin"
      }).then(function (res) {
        return res.text().then(function (text) {
          if (flash) {
            flash.textContent = text;
            flash.classList.remove("hidden");
            flash.classList.toggle("bad", !res.ok);
          }
          if (res.ok) form.hidden = true;
        });
      }).catch(function () {
        if (flash) {
          flash.textContent = "The gateway could not be reached; try again.";
          flash.classList.remove("hidden");
          flash.classList.add("bad");
        }
      }).finally(function () { if (button) button.disabled = false; });
    });
  });

  // A list's "tick every job" box ticks (or clears) the rows' boxes of its form.
  document.querySelectorAll("input[data-pick-all]").forEach(function (all) {
    all.addEventListener("change", function () {
      var form = all.form;
      if (!form) return;
      form.querySelectorAll('input[type="checkbox"][name="job"]').forEach(function (box) {
        box.checked = all.checked;
      });
    });
  });

  connect();
})();
