// The dmap console's only script: confirm actions, and refresh a page from its JSON twin.
// No library and no build step. The server renders everything (the chart included); this file
// only copies values from /…/live.json into the elements that name them:
//   data-live="URL"    the part of the page to refresh, and the JSON it polls
//   data-field="a.b"   text = that value (numbers with thousands separators)
//   data-badge         also its class: "badge badge-<value>"
//   data-value="a"     a <progress>'s value      data-html="a"  markup rendered by the server
//   data-show="a"      shown while a is true      data-hide="a"  hidden while a is true
//   data-confirm="…"   a form asks before it posts
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  function pick(data, path) {
    return path.split(".").reduce(function (value, key) {
      return value === null || value === undefined ? undefined : value[key];
    }, data);
  }

  function text(value) {
    if (typeof value === "number") {
      return value.toLocaleString("en-US", { maximumFractionDigits: 1 });
    }
    return value === null ? "—" : String(value);
  }

  function each(root, attribute, data, apply) {
    root.querySelectorAll("[" + attribute + "]").forEach(function (element) {
      var value = pick(data, element.getAttribute(attribute));
      if (value !== undefined) {
        apply(element, value);
      }
    });
  }

  function refresh(root, data) {
    each(root, "data-field", data, function (element, value) {
      var shown = text(value);
      if (element.textContent !== shown) {
        element.textContent = shown;
      }
      if (element.hasAttribute("data-badge")) {
        element.className = "badge badge-" + String(value).toLowerCase();
      }
    });
    each(root, "data-value", data, function (element, value) { element.value = value; });
    each(root, "data-html", data, function (element, value) {
      if (element.innerHTML !== value) {
        element.innerHTML = value;
      }
    });
    each(root, "data-show", data, function (element, value) { element.hidden = !value; });
    each(root, "data-hide", data, function (element, value) { element.hidden = !!value; });
  }

  function poll(root) {
    var url = root.getAttribute("data-live");
    var updates = 0;
    function again(ms) { window.setTimeout(tick, ms); }
    function tick() {
      if (document.hidden) {
        return again(2000);
      }
      window.fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data) {
            return again(5000);
          }
          refresh(root, data);
          updates += 1;
          root.setAttribute("data-updates", String(updates));
          var running = data.status === "RUNNING" || data.execution_status === "RUNNING";
          again(running ? 1500 : 10000);
        })
        .catch(function () { again(5000); });
    }
    again(1500);
  }

  document.querySelectorAll("[data-live]").forEach(function (root) {
    if (window.fetch) {
      poll(root);
    }
  });
})();
