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
      if (name === "status") el.className = el.className.replace(/\bst-[a-z_]+\b/, "st-" + value);
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
