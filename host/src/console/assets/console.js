// The console's own script: close the pages' live streams before the browser leaves a
// page, so a stream cut by the navigation is not reported as an error.
"use strict";
function closeStreams() {
  if (!window.htmx) return;
  document.querySelectorAll("[sse-connect]").forEach(function (el) {
    window.htmx.trigger(el, "htmx:beforeCleanupElement");
  });
}
window.addEventListener("beforeunload", closeStreams);
window.addEventListener("pagehide", closeStreams);
