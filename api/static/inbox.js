// The desk's inbox: new messages without a reload. Every few seconds the page is fetched
// again and its `data-live` parts are swapped in (the reply being typed is left alone).
// Canned answers: a click puts the text into the reply, to be read before sending.
(function () {
  "use strict";
  var PERIOD = 5000;

  function refresh() {
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok || response.redirected) { return null; }
        return response.text();
      })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (part) {
          var name = part.getAttribute("data-live");
          var next = fresh.querySelector('[data-live="' + name + '"]');
          if (next && next.innerHTML !== part.innerHTML) { part.innerHTML = next.innerHTML; }
        });
      })
      .catch(function () { /* offline for a moment: the next round will do */ });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-canned]");
    var reply = document.getElementById("reply-text");
    if (!button || !reply) { return; }
    reply.value = button.getAttribute("data-canned");
    reply.focus();
  });

  window.setInterval(refresh, PERIOD);
})();
