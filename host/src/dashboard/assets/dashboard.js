// Live updates for Weft's dashboard: every element with `data-live-src` whose
// `data-live-active` is "true" is fetched again from that URL every two seconds and
// replaced by the answer (the same element, rendered and escaped by the server), until an
// answer says it is no longer active (the instance ended). Nothing else runs here: the
// pages work without it, only without live updates.
(function () {
  "use strict";
  var PERIOD_MS = 2000;

  function watch(id) {
    var previous = null;
    function tick() {
      var current = document.getElementById(id);
      if (!current || current.getAttribute("data-live-active") !== "true") {
        return;
      }
      fetch(current.getAttribute("data-live-src"), {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      })
        .then(function (response) {
          if (response.status === 401) {
            window.location.assign("/ui/login");
            return null;
          }
          return response.ok ? response.text() : null;
        })
        .then(function (text) {
          if (text !== null && text !== previous) {
            previous = text;
            var template = document.createElement("template");
            template.innerHTML = text;
            var replacement = template.content.firstElementChild;
            var now = document.getElementById(id);
            if (replacement && replacement.id === id && now) {
              // Keep what the reader opened or closed (failed tasks) as it was.
              now.querySelectorAll("details[id]").forEach(function (old) {
                var fresh = replacement.querySelector("#" + CSS.escape(old.id));
                if (fresh) {
                  fresh.open = old.open;
                }
              });
              now.replaceWith(replacement);
            }
          }
        })
        .catch(function () {
          // The server may be restarting: try again at the next tick.
        })
        .then(function () {
          window.setTimeout(tick, PERIOD_MS);
        });
    }
    window.setTimeout(tick, PERIOD_MS);
  }

  document.querySelectorAll("[data-live-src][id]").forEach(function (element) {
    watch(element.id);
  });
})();
