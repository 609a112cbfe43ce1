/* Job pages.
 * Launch form: narrow the task list to the chosen dataset's modality, summarize the dataset,
 *   describe the chosen task, show each hyperparameter's default for the chosen preset, highlight
 *   the chosen cards, and show the GPU count only for GPU jobs.
 * Job page: poll the job's status.json while it is queued or running and update the badge, the
 *   progress bar, the phase and the facts in place, and fetch the log's tail when it grew; stop when
 *   it ends and reload once so the results appear. Cancel asks for confirmation first.
 */
(function () {
  "use strict";

  function launchForm(form) {
    var dataset = form.querySelector("select[name=dataset]");
    var task = form.querySelector("select[name=task]");
    var taskDescription = document.getElementById("task-description");
    var tasksInfo = JSON.parse((document.getElementById("tasks-info") || {}).textContent || "{}");
    var presetDefaults = JSON.parse((document.getElementById("preset-defaults") || {}).textContent || "{}");

    function narrowTasks() {
      if (!dataset || !task) return;
      var option = dataset.options[dataset.selectedIndex];
      var modality = option ? option.getAttribute("data-modality") : null;
      var summary = document.getElementById("dataset-summary");
      if (summary) summary.textContent = option ? option.getAttribute("data-summary") || "" : "";
      var visible = [];
      Array.prototype.forEach.call(task.options, function (o) {
        var m = o.getAttribute("data-modality");
        var show = !modality || !m || m === modality;
        o.hidden = !show;
        o.disabled = !show;
        if (show && m) visible.push(o);
      });
      var chosen = task.options[task.selectedIndex];
      if (chosen && chosen.disabled) task.value = "";
      if (modality && visible.length === 1 && !task.value) task.value = visible[0].value;
      describeTask();
    }

    function describeTask() {
      if (!taskDescription || !task) return;
      var info = tasksInfo[task.value];
      taskDescription.textContent = info ? info.description + " Primary metric: " + info.primary_metric + "." : "";
    }

    function showDefaults() {
      var checked = form.querySelector("input[name=preset]:checked");
      var defaults = presetDefaults[checked ? checked.value : "tiny"] || {};
      form.querySelectorAll("input[data-hp]").forEach(function (input) {
        var name = input.getAttribute("data-hp");
        if (name in defaults) input.placeholder = String(defaults[name]);
      });
    }

    function highlightCards(name) {
      form.querySelectorAll("input[name=" + name + "]").forEach(function (input) {
        var card = input.closest(".lf-choice-card");
        if (card) card.classList.toggle("border-primary", input.checked);
      });
    }

    // Only the chosen profile's options apply: show its group, hide the others'.
    function showProfileOptions() {
      var chosen = form.querySelector("input[name=profile]:checked");
      var key = chosen ? chosen.value : "";
      var shown = false;
      form.querySelectorAll(".lf-profile-options").forEach(function (group) {
        var mine = group.getAttribute("data-profile") === key;
        group.classList.toggle("d-none", !mine);
        shown = shown || mine;
      });
      var none = document.getElementById("profile-options-none");
      if (none) none.classList.toggle("d-none", shown);
    }

    function toggleGpu() {
      var wrapper = document.getElementById("gpu-count-wrapper");
      var gpu = form.querySelector("input[name=device][value=gpu]");
      if (wrapper && gpu) wrapper.hidden = !gpu.checked;
    }

    if (dataset) dataset.addEventListener("change", narrowTasks);
    if (task) task.addEventListener("change", describeTask);
    form.addEventListener("change", function (event) {
      var name = event.target.name;
      if (name === "preset") { showDefaults(); highlightCards("preset"); }
      if (name === "profile") { highlightCards("profile"); showProfileOptions(); }
      if (name === "device") toggleGpu();
    });
    form.addEventListener("submit", function () {
      var button = document.getElementById("launch-submit");
      if (button) { button.disabled = true; button.textContent = "Launching…"; }
    });
    narrowTasks();
    showDefaults();
    showProfileOptions();
    toggleGpu();
  }

  function formatTime(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    var pad = function (n) { return String(n).padStart(2, "0"); };
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el) el.textContent = text;
  }

  function jobPage(root) {
    var url = root.getAttribute("data-status-url");
    var logUrl = root.getAttribute("data-log-url");
    var delay = 2000;
    var timer = null;
    var logSeen = null;  // "attempt:chars" of the log shown

    function refreshLog(s) {
      var key = s.log_attempt + ":" + s.log_chars;
      if (!logUrl || !s.log_attempt || key === logSeen) return;
      logSeen = key;
      fetch(logUrl, { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (text) {
          var pre = document.getElementById("job-log");
          if (text === null || !pre) return;
          var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
          pre.textContent = text;
          pre.hidden = !text;
          var empty = document.getElementById("job-log-empty");
          if (empty) empty.hidden = !!text;
          setText("job-log-caption", "(the last lines of attempt " + s.log_attempt + ", updated while it runs)");
          if (atEnd) pre.scrollTop = pre.scrollHeight;  // follow the tail unless the reader scrolled up
        })
        .catch(function () { logSeen = null; });
    }

    function apply(s) {
      var badge = document.getElementById("job-status");
      if (badge) {
        badge.className = badge.className.replace(/lf-status-\w+/, "lf-status-" + s.status);
        badge.setAttribute("data-status", s.status);
        badge.textContent = s.status_label;
      }
      var bar = document.getElementById("job-progress");
      if (bar) {
        bar.setAttribute("aria-valuenow", String(s.percent));
        var inner = bar.querySelector(".progress-bar");
        if (inner) {
          inner.style.width = s.percent + "%";
          inner.textContent = s.percent + "%";
          inner.classList.toggle("progress-bar-striped", s.status === "running");
          inner.classList.toggle("progress-bar-animated", s.status === "running");
          inner.classList.toggle("bg-success", s.status === "succeeded");
          inner.classList.toggle("bg-danger", s.status === "failed");
          inner.classList.toggle("bg-secondary", s.status === "queued");
        }
      }
      var phase = document.getElementById("job-phase");
      if (phase) {
        phase.textContent = s.phase_text || "";
        phase.hidden = !s.phase_text;
      }
      refreshLog(s);
      setText("job-epoch", String(s.epoch));
      setText("job-step", String(s.step));
      setText("job-attempts", s.attempts + " of " + s.max_attempts);
      setText("job-worker", s.worker || "—");
      setText("job-started", formatTime(s.started_at));
      setText("job-finished", formatTime(s.finished_at));
      var queued = document.getElementById("job-queued-note");
      if (queued) queued.hidden = s.status !== "queued";
      var cancel = document.getElementById("job-cancel");
      if (cancel && s.cancel_requested) { cancel.disabled = true; cancel.textContent = "Cancelling…"; }
      document.title = document.title.replace(/· \w+ ·/, "· " + s.status_label + " ·");
    }

    function poll() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error("status " + response.status);
          return response.json();
        })
        .then(function (s) {
          apply(s);
          delay = 2000;
          if (s.finished) {
            root.setAttribute("data-finished", "true");
            // The metrics, report, downloads and explanations are rendered by the server: reload once.
            window.setTimeout(function () { window.location.reload(); }, 1500);
            return;
          }
          timer = window.setTimeout(poll, delay);
        })
        .catch(function () {
          delay = Math.min(delay * 2, 30000);  // the server is busy or gone: back off, keep trying
          timer = window.setTimeout(poll, delay);
        });
    }

    if (root.getAttribute("data-finished") !== "true") timer = window.setTimeout(poll, delay);
    return timer;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("launch-form");
    if (form) launchForm(form);
    var root = document.getElementById("job-page");
    if (root) jobPage(root);
    var cancel = document.getElementById("job-cancel-form");
    if (cancel) {
      cancel.addEventListener("submit", function (event) {
        if (!window.confirm(cancel.getAttribute("data-confirm") || "Cancel this job?")) event.preventDefault();
      });
    }
    var log = document.getElementById("job-log");
    if (log) log.scrollTop = log.scrollHeight;  // the tail is what matters: show its last lines
  });
})();
