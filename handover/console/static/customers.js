/*
 * Merge two customers and split a channel identity off again (handover/customers.py): a small
 * page of its own beside the console, over POST /api/v1/customers/{id}/merge and /split. The
 * console's login (session cookie + CSRF token from /api/v1/me) is used. Text via textContent only.
 */
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var csrf = null;
  var current = null;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function api(method, path, body) {
    var headers = {};
    if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
    var opts = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch(path, opts).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) { var e = new Error(data.error || ("HTTP " + resp.status)); e.status = resp.status; throw e; }
        return data;
      });
    });
  }

  function say(text) { $("customers-status").textContent = text; }

  function show(customer) {
    current = customer;
    $("customers-profile").hidden = false;
    $("customers-name").textContent = customer.name || "Ohne Namen";
    $("customers-details").textContent = "ID " + customer.id + (customer.language ? " · Sprache " + customer.language : "") +
      (customer.customer_number ? " · Kundennummer " + customer.customer_number : "");
    var list = $("customers-identities");
    while (list.firstChild) list.removeChild(list.firstChild);
    customer.identities.forEach(function (identity) {
      var item = el("li", {}, identity.channel + ": " + identity.external_id + " ");
      var button = el("button", { type: "button", "data-testid": "customers-split-" + identity.id }, "Abtrennen");
      button.setAttribute("aria-label", "Kanal " + identity.channel + " abtrennen");
      button.disabled = customer.identities.length < 2;
      button.addEventListener("click", function () {
        api("POST", "/api/v1/customers/" + customer.id + "/split", { identity_id: identity.id }).then(function (data) {
          show(data.customer);
          say("Abgetrennt: neuer Kunde " + data.new_customer.id);
        }).catch(function (e) { say("Nicht möglich: " + e.message); });
      });
      item.appendChild(button);
      list.appendChild(item);
    });
  }

  function load(id) {
    return api("GET", "/api/v1/customers/" + id).then(function (data) { show(data.customer); say(""); })
      .catch(function (e) { say(e.status === 404 ? "Keinen solchen Kunden gefunden." : "Nicht möglich: " + e.message); });
  }

  $("customers-load").addEventListener("submit", function (event) {
    event.preventDefault();
    load($("customers-id").value.trim());
  });
  $("customers-merge").addEventListener("submit", function (event) {
    event.preventDefault();
    if (!current) return;
    api("POST", "/api/v1/customers/" + current.id + "/merge", { merged_id: $("customers-merged").value.trim() })
      .then(function (data) { show(data.customer); say("Zusammengeführt."); $("customers-merged").value = ""; })
      .catch(function (e) { say("Nicht möglich: " + e.message); });
  });

  api("GET", "/api/v1/me").then(function (data) {
    csrf = data.csrf_token;
    var given = new URLSearchParams(location.search).get("customer");
    if (given && /^[0-9a-f]{32}$/.test(given)) { $("customers-id").value = given; load(given); }
  }).catch(function () { $("customers-login").hidden = false; });
})();
