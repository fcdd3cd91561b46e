// The broadcasts pages of the console: counters and phone previews while composing, the
// audience's live count, and the progress of a broadcast being sent. Text goes in with
// textContent only (never as HTML), its words from the page's data- attributes (in the
// console's language). Without JavaScript the pages still work.
(function () {
  "use strict";

  function compose(form) {
    form.querySelectorAll("textarea[data-preview]").forEach(function (area) {
      var preview = document.getElementById(area.dataset.preview);
      var counter = document.getElementById(area.dataset.counter);
      var length = counter.querySelector("[data-length]");
      var limit = Number(counter.dataset.whatsapp);
      function update() {
        var text = area.value.trim();
        preview.textContent = text || preview.dataset.empty || "";
        length.textContent = String(area.value.length);
        counter.classList.toggle("over", area.value.length > limit);
      }
      area.addEventListener("input", update);
      update();
    });

    var box = document.getElementById("audience-count");
    var error = box.querySelector("[data-count-error]");
    var timer = null;
    var asked = 0;
    function count() {
      var mine = ++asked;
      fetch(form.dataset.countUrl, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then(function (response) { return response.json(); })
        .then(function (data) {
          if (mine !== asked) return;
          error.hidden = !data.error;
          box.querySelectorAll("[data-count]").forEach(function (cell) {
            var value = data[cell.dataset.count];
            cell.textContent = value === undefined ? "—" : String(value);
          });
        })
        .catch(function () { error.hidden = false; });
    }
    function later(event) {
      if (event.target.closest && event.target.closest("textarea, #b-title")) return;
      clearTimeout(timer);
      timer = setTimeout(count, 250);
    }
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    count();
  }

  function progress(section) {
    var labels = JSON.parse(section.dataset.labels || "{}");
    var reasons = JSON.parse(section.dataset.skipLabels || "{}");
    var format = section.dataset.skipFormat || "{status} : {count}";
    var bar = document.getElementById("progress-bar");
    var status = document.querySelector("[data-status-label]");
    function show(data) {
      bar.value = data.percent;
      section.querySelector('[data-stat="percent-text"]').textContent = data.percent + " %";
      ["audience", "queued", "pending", "sent", "delivered", "read", "failed", "cancelled"].forEach(
        function (key) {
          var cell = section.querySelector('[data-stat="' + key + '"]');
          if (cell) cell.textContent = String(data[key]);
        }
      );
      var skipped = Object.keys(data.skipped).map(function (k) {
        return format.replace("{status}", reasons[k] || k).replace("{count}", String(data.skipped[k]));
      });
      section.querySelector('[data-stat="skipped"]').textContent = skipped.join(", ") || "0";
      if (status && labels[data.status]) {
        status.textContent = labels[data.status];
        status.className = "pill big pill-" + data.status;
      }
      section.dataset.live = data.live ? "true" : "false";
    }
    function poll() {
      fetch(section.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.json(); })
        .then(function (data) {
          if (data.error) return;
          show(data);
          if (data.live) setTimeout(poll, 1000);
        })
        .catch(function () { setTimeout(poll, 5000); });
    }
    if (section.dataset.live === "true") setTimeout(poll, 500);
  }

  var form = document.getElementById("compose");
  if (form) compose(form);
  var section = document.getElementById("progress");
  if (section) progress(section);
})();
