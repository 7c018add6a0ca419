/*
 * Merge two customers and split a channel identity off again (handover/customers.py): a small
 * page of its own beside the console, over POST /api/v1/customers/{id}/merge and /split. Each
 * identity shows its channel, address and whether (and how) it was verified. The console's
 * login (session cookie + CSRF token from /api/v1/me) is used; labels in the agent's language
 * (i18n.js). Text via textContent only.
 */
import { LANG, identityParts, label, t } from "/console/static/i18n.js";

const $ = (id) => document.getElementById(id);
let csrf = null;
let current = null;

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function api(method, path, body) {
  const headers = {};
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  const opts = { method, headers, credentials: "same-origin" };
  if (body !== undefined) { headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  return fetch(path, opts).then((resp) => resp.json().catch(() => ({})).then((data) => {
    if (!resp.ok) { const e = new Error(data.error || ("HTTP " + resp.status)); e.status = resp.status; throw e; }
    return data;
  }));
}

const say = (text) => { $("customers-status").textContent = text; };
const failed = (e) => say(t("cust.failed", { error: e.message }));

function show(customer) {
  current = customer;
  $("customers-profile").hidden = false;
  $("customers-name").textContent = customer.name || t("cust.noname");
  $("customers-details").textContent = "ID " + customer.id
    + (customer.language ? " · " + t("profile.language") + " " + label(null, "lang", customer.language) : "")
    + (customer.customer_number ? " · " + t("profile.number") + " " + customer.customer_number : "");
  const list = $("customers-identities");
  list.replaceChildren();
  customer.identities.forEach((identity) => {
    const x = identityParts(identity);
    const item = el("li", { "data-testid": "customers-identity", "data-channel": identity.channel,
                            "data-verified": identity.verified_by || "" });
    item.appendChild(el("span", { class: "id-address" }, x.channel + " · " + x.address));
    item.appendChild(el("span", { class: "id-proof" + (identity.verified_by ? " verified" : "") }, " · " + x.proof));
    if (identity.opted_out) item.appendChild(el("span", {}, " · " + t("profile.opted_out")));
    item.appendChild(document.createTextNode(" "));
    const button = el("button", { type: "button", "data-testid": "customers-split-" + identity.id }, t("cust.split"));
    button.setAttribute("aria-label", t("cust.split.label", { channel: x.channel + " " + x.address }));
    button.disabled = customer.identities.length < 2;
    button.addEventListener("click", () => {
      api("POST", "/api/v1/customers/" + customer.id + "/split", { identity_id: identity.id }).then((data) => {
        show(data.customer);
        say(t("cust.split.done", { id: data.new_customer.id }));
      }).catch(failed);
    });
    item.appendChild(button);
    list.appendChild(item);
  });
}

function load(id) {
  return api("GET", "/api/v1/customers/" + id).then((data) => { show(data.customer); say(""); })
    .catch((e) => (e.status === 404 ? say(t("cust.unknown")) : failed(e)));
}

document.documentElement.lang = LANG;
document.querySelectorAll("[data-i18n]").forEach((node) => { node.textContent = t(node.dataset.i18n); });
document.title = t("cust.title") + " – Resonanz";

$("customers-load").addEventListener("submit", (event) => {
  event.preventDefault();
  load($("customers-id").value.trim());
});
$("customers-merge").addEventListener("submit", (event) => {
  event.preventDefault();
  if (!current) return;
  api("POST", "/api/v1/customers/" + current.id + "/merge", { merged_id: $("customers-merged").value.trim() })
    .then((data) => { show(data.customer); say(t("cust.merged")); $("customers-merged").value = ""; })
    .catch(failed);
});

api("GET", "/api/v1/me").then((data) => {
  csrf = data.csrf_token;
  const given = new URLSearchParams(location.search).get("customer");
  if (given && /^[0-9a-f]{32}$/.test(given)) { $("customers-id").value = given; load(given); }
}).catch(() => { $("customers-login").hidden = false; });
