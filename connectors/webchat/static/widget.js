/*
 * Resonanz web chat: the loader a page embeds.
 *
 *   <script src="https://your-gateway.example/webchat/widget.js" defer></script>
 *
 * Options (data attributes on the script tag):
 *   data-resonanz-url="https://gateway.example"  gateway base URL (default: where the script came from)
 *   data-open="true"                              start open, filling the page (used by /chat)
 *
 * It adds one element, <resonanz-chat>, and mounts the chat (app.mjs, Preact + htm) in its Shadow
 * DOM: the host page's styles do not reach the chat, and the chat's styles do not leak out.
 * Every text from the customer, the bot or an agent is rendered as text, never as HTML.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  var base = (script && script.getAttribute("data-resonanz-url")) ||
    (script && script.src ? new URL(script.src, location.href).origin : location.origin);
  var full = !!script && script.getAttribute("data-open") === "true";

  function mount() {
    var host = document.createElement("resonanz-chat");
    host.setAttribute("data-testid", "resonanz-host");
    var shadow = host.attachShadow({ mode: "open" });
    var css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = base + "/webchat/app.css";
    shadow.appendChild(css);
    var container = document.createElement("div");
    shadow.appendChild(container);
    document.body.appendChild(host);
    if (full && !document.querySelector("link[rel~='icon']")) {
      var icon = document.createElement("link");
      icon.rel = "icon";
      icon.type = "image/svg+xml";
      icon.href = base + "/webchat/favicon.svg";
      document.head.appendChild(icon);
    }
    import(base + "/webchat/app.mjs").then(function (app) {
      app.mount(container, { base: base, full: full, host: host });
    });
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
