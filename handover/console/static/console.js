/*
 * Resonanz agent console. Plain JavaScript over the agent API (/api/v1, see /api/openapi.json).
 * Every text from customers, the bot or agents is set with textContent — never as HTML.
 */
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var state = { me: null, csrf: null, current: null, detail: null, meta: null, ws: null, backoff: 500 };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function api(method, path, body, isForm) {
    var headers = {};
    if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
    var opts = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) {
      if (isForm) { opts.body = body; } else { headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    }
    return fetch(path, opts).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (resp.status === 401 && path !== "/api/v1/login") showLogin();
        if (!resp.ok) { var e = new Error(data.error || ("HTTP " + resp.status)); e.status = resp.status; throw e; }
        return data;
      });
    });
  }

  // --- login -------------------------------------------------------------------------------
  function showLogin() {
    $("app").hidden = true;
    $("login").hidden = false;
    if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  }
  function started(data) {
    if (data.agent.role === "trainer") { location.assign("/console/review"); return; }  // trainers only review
    state.me = data.agent;
    state.csrf = data.csrf_token;
    // Whoever used this tab before (perhaps an admin) leaves nothing open behind.
    state.current = null;
    state.detail = null;
    $("admin").hidden = true;
    $("conversation").hidden = true;
    $("context").hidden = true;
    editQueue(null);
    $("login").hidden = true;
    $("app").hidden = false;
    $("me-name").textContent = state.me.display_name;
    $("status-select").value = state.me.status;
    $("admin-toggle").hidden = state.me.role !== "admin";
    api("GET", "/api/v1/meta").then(function (meta) {
      state.meta = meta;
      var sel = $("close-resolution");
      clear(sel);
      meta.resolutions.forEach(function (r) { sel.appendChild(el("option", { value: r }, r)); });
    });
    refreshLists();
    connect();
  }
  $("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    $("login-error").textContent = "";
    api("POST", "/api/v1/login", { email: $("login-email").value, password: $("login-password").value })
      .then(started)
      .catch(function (e) { $("login-error").textContent = e.message; });
  });
  $("logout").addEventListener("click", function () {
    api("POST", "/api/v1/logout").finally(showLogin);
  });
  $("status-select").addEventListener("change", function () {
    api("PUT", "/api/v1/me/status", { status: $("status-select").value }).catch(showError);
  });

  // --- lists -------------------------------------------------------------------------------
  function ago(seconds) {
    if (seconds < 60) return seconds + " s";
    return Math.round(seconds / 60) + " min";
  }
  function handoverItem(h, testid) {
    var li = el("li", { "data-testid": testid, "data-id": h.id });
    if (state.current === h.id) li.className = "active";
    li.appendChild(el("strong", {}, h.customer.name || h.customer.id.slice(0, 8)));
    if (h.offered_to_me) li.appendChild(el("span", { "class": "badge offer", "data-testid": "offered-badge" }, "für Sie / for you"));
    li.appendChild(el("span", { "class": "meta" }, h.reason + " · " + (h.channel || "") + " · " + h.status +
      (h.status === "waiting" || h.status === "offered" ? " · " + ago(h.waiting_seconds) : "")));
    if (h.last_message) li.appendChild(el("span", { "class": "meta" }, h.last_message.text.slice(0, 80)));
    if (h.rating) li.appendChild(el("span", { "class": "meta", "data-testid": "list-rating" }, "★ " + h.rating));
    li.addEventListener("click", function () { open(h.id); });
    return li;
  }
  var pending = null;
  function refreshLists() {
    if (pending) return;
    pending = setTimeout(function () { pending = null; }, 150);
    api("GET", "/api/v1/handovers?view=queue").then(function (d) { fill("queue", d.handovers, "queue-item"); });
    api("GET", "/api/v1/handovers?view=mine").then(function (d) { fill("mine", d.handovers, "mine-item"); });
    api("GET", "/api/v1/handovers?view=all").then(function (d) {
      fill("closed", d.handovers.filter(function (h) { return h.status === "closed" || h.status === "returned"; }).slice(0, 20), "closed-item");
    });
    api("GET", "/api/v1/conversations?state=bot").then(function (d) {
      var ul = $("live-bot");
      clear(ul);
      d.conversations.slice(0, 30).forEach(function (c) {
        var li = el("li", { "data-testid": "live-item" });
        li.appendChild(el("strong", {}, c.customer.name || c.customer.id.slice(0, 8)));
        if (c.last_message) li.appendChild(el("span", { "class": "meta" }, c.last_message.text.slice(0, 80)));
        var b = el("button", { type: "button", "data-testid": "take-over" }, "Übernehmen / Take over");
        b.addEventListener("click", function (ev) {
          ev.stopPropagation();
          api("POST", "/api/v1/conversations/" + c.id + "/take-over").then(function (r) { open(r.handover.id); refreshLists(); }).catch(showError);
        });
        li.appendChild(b);
        ul.appendChild(li);
      });
    });
  }
  function fill(id, items, testid) {
    var ul = $(id);
    clear(ul);
    items.forEach(function (h) { ul.appendChild(handoverItem(h, testid)); });
  }

  // --- one conversation --------------------------------------------------------------------
  function showError(e) { $("action-error").textContent = e && e.message ? e.message : String(e); }

  function renderMessage(m) {
    var li = el("li", { "data-testid": "transcript-message", "data-author": m.author, "data-direction": m.direction, "data-id": m.id });
    var who = m.direction === "note" ? "Notiz" + (m.agent_name ? " · " + m.agent_name : "") : m.author;
    li.appendChild(el("span", { "class": "who" }, who + " · " + (m.timestamp || "").slice(11, 16)));
    li.appendChild(el("p", {}, m.text));
    if (m.status === "failed" || m.status === "unknown") {
      li.appendChild(el("p", { "class": "delivery-error", "data-testid": "delivery-error" },
        (m.status === "failed" ? "Nicht zugestellt: " : "Zustellung unklar: ") + (m.error || "")));
    }
    if (m.location) {
      li.appendChild(el("span", { "class": "parse" }, "📍 " + m.location.latitude + ", " + m.location.longitude + (m.location.label ? " · " + m.location.label : "")));
    }
    (m.attachments || []).forEach(function (a) {
      var safe = /^(https?:\/\/[^\s]+|\/media\/[A-Za-z0-9_.-]+)$/.test(a.url);
      if (a.kind === "image" && safe) li.appendChild(el("img", { src: a.url, alt: a.name || "" }));
      else if (safe) li.appendChild(el("a", { href: a.url, target: "_blank", rel: "noopener" }, a.name || "Datei"));
    });
    if (m.parse && m.parse.intent) {
      var ents = (m.parse.entities || []).map(function (e) { return e.entity + "=" + e.value; }).join(", ");
      li.appendChild(el("span", { "class": "parse", "data-testid": "context-intents" },
        m.parse.intent + " " + Math.round((m.parse.confidence || 0) * 100) + "%" + (ents ? " · " + ents : "")));
    }
    return li;
  }

  function renderContext(d) {
    var c = d.context || {};
    $("ctx-reason").textContent = (c.reason || d.handover.reason) + " (" + (c.trigger || d.handover.trigger) + ")";
    $("ctx-summary").textContent = c.summary || "";
    var slots = $("ctx-slots"); clear(slots);
    Object.keys(c.slots || {}).forEach(function (k) { slots.appendChild(el("li", {}, k + ": " + JSON.stringify(c.slots[k]))); });
    var prof = $("ctx-profile"); clear(prof);
    var p = c.profile || {};
    [["Name", p.name], ["Kundennummer", p.customer_number], ["Sprache", p.language], ["Präferenz", p.preference],
     ["Kanäle", (p.channels || []).map(function (c) { return (p.opted_out || []).indexOf(c) >= 0 ? c + " (abgemeldet: STOP)" : c; }).join(", ")]].forEach(function (row) {
      if (row[1]) prof.appendChild(el("li", {}, row[0] + ": " + row[1]));
    });
    var s = c.sentiment || {};
    $("ctx-sentiment").textContent = (s.latest !== undefined ? s.latest : "–") + " · " + (s.trend || "") +
      ((s.matches || []).length ? " · " + s.matches.join(", ") : "");
    var hist = $("ctx-history"); clear(hist);
    (c.history || []).forEach(function (h) {
      var outcome = (h.handovers || []).map(function (x) { return x.reason + "→" + x.status + (x.resolution ? " (" + x.resolution + ")" : "") + (x.rating ? " ★" + x.rating : ""); }).join("; ");
      hist.appendChild(el("li", {}, (h.started_at || "").slice(0, 10) + " · " + (h.channel || "") + " · " + h.state + (outcome ? " · " + outcome : "")));
    });
    $("ctx-rating").textContent = d.handover.rating ? "★ " + d.handover.rating + " / 5" : "–";
  }

  function renderHead(h) {
    $("conv-title").textContent = (h.customer.name || h.customer.id.slice(0, 8)) + " · " + (h.channel || "");
    $("conv-status").textContent = h.status;
    $("accept").hidden = !(h.status === "waiting" || h.status === "offered");
  }

  function open(id) {
    state.current = id;
    $("action-error").textContent = "";
    $("admin").hidden = true;
    api("GET", "/api/v1/handovers/" + id).then(function (d) {
      state.detail = d;
      $("conversation").hidden = false;
      $("context").hidden = false;
      renderHead(d.handover);
      var ol = $("transcript"); clear(ol);
      d.messages.forEach(function (m) { ol.appendChild(renderMessage(m)); });
      ol.scrollTop = ol.scrollHeight;
      renderContext(d);
      fillTransfer();
      refreshLists();
    }).catch(showError);
  }

  function fillTransfer() {
    var sel = $("transfer-target"); clear(sel);
    Promise.all([api("GET", "/api/v1/agents"), api("GET", "/api/v1/queues")]).then(function (r) {
      r[0].agents.filter(function (a) { return a.id !== state.me.id; }).forEach(function (a) {
        sel.appendChild(el("option", { value: "agent:" + a.id }, "→ " + a.display_name + " (" + a.status + ")"));
      });
      r[1].queues.forEach(function (q) { sel.appendChild(el("option", { value: "queue:" + q.id }, "→ Queue " + q.name)); });
    });
  }

  $("accept").addEventListener("click", function () {
    api("POST", "/api/v1/handovers/" + state.current + "/accept").then(function () { open(state.current); }).catch(showError);
  });
  $("reply-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = $("reply-input").value, file = $("reply-image").files[0];
    if (!text.trim() && !file) return;
    var req;
    if (file) {
      var fd = new FormData();
      fd.append("text", text);
      fd.append("image", file);
      req = api("POST", "/api/v1/handovers/" + state.current + "/messages", fd, true);
    } else {
      req = api("POST", "/api/v1/handovers/" + state.current + "/messages", { text: text });
    }
    req.then(function () { $("reply-input").value = ""; $("reply-image").value = ""; }).catch(showError);
  });
  $("note-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = $("note-input").value;
    if (!text.trim()) return;
    api("POST", "/api/v1/handovers/" + state.current + "/notes", { text: text }).then(function () { $("note-input").value = ""; }).catch(showError);
  });
  $("transfer-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var target = $("transfer-target").value.split(":");
    var body = { note: $("transfer-note").value };
    body[target[0] === "agent" ? "agent_id" : "queue_id"] = target[1];
    api("POST", "/api/v1/handovers/" + state.current + "/transfer", body).then(function () { open(state.current); }).catch(showError);
  });
  $("close-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var slots = {};
    if ($("close-customer-number").value.trim()) slots.customer_number = $("close-customer-number").value.trim();
    api("POST", "/api/v1/handovers/" + state.current + "/close",
      { resolution: $("close-resolution").value, return_to_bot: $("close-return").checked, slots: slots })
      .then(function () { open(state.current); }).catch(showError);
  });

  // --- live updates ------------------------------------------------------------------------
  function connect() {
    var url = new URL("/api/v1/stream", location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    var ws = new WebSocket(url.toString());
    state.ws = ws;
    ws.onopen = function () { state.backoff = 500; $("live").textContent = "live"; refreshLists(); };
    ws.onmessage = function (ev) {
      var e;
      try { e = JSON.parse(ev.data); } catch (x) { return; }
      if (e.type === "handover") {
        refreshLists();
        if (e.handover.id === state.current && state.detail) {
          state.detail.handover = e.handover;
          renderHead(e.handover);
          $("ctx-rating").textContent = e.handover.rating ? "★ " + e.handover.rating + " / 5" : "–";
        }
      } else if (e.type === "message") {
        if (state.detail && e.conversation_id === state.detail.handover.conversation_id) {
          var ol = $("transcript");
          var known = ol.querySelector('[data-id="' + e.message.id + '"]');
          // A message published again (its delivery status changed) replaces the shown one.
          if (known) ol.replaceChild(renderMessage(e.message), known); else ol.appendChild(renderMessage(e.message));
          ol.scrollTop = ol.scrollHeight;
        }
        refreshLists();
      } else if (e.type === "handover_removed") {
        // Transferred out of this agent's queues: it is no longer theirs to see.
        if (e.id === state.current) {
          state.current = null; state.detail = null;
          $("conversation").hidden = true; $("context").hidden = true;
        }
        refreshLists();
      } else if (e.type === "resync") {
        refreshLists();
        if (state.current) open(state.current);
      }
    };
    ws.onclose = function (ev) {
      $("live").textContent = "offline…";
      if (!state.me) return;
      // 1008: the server ended the stream because the login ended (logout elsewhere, revoked,
      // deactivated, expired). Asking /me shows the login form on its 401 instead of retrying.
      if (ev.code === 1008) { api("GET", "/api/v1/me").then(function () { setTimeout(connect, state.backoff); }).catch(function () {}); return; }
      setTimeout(connect, state.backoff);
      state.backoff = Math.min(state.backoff * 2, 15000);
    };
  }

  // --- administration ----------------------------------------------------------------------
  $("admin-toggle").addEventListener("click", function () {
    $("conversation").hidden = true;
    $("context").hidden = true;
    $("admin").hidden = false;
    loadAdmin();
  });
  function loadAdmin() {
    api("GET", "/api/v1/agents").then(function (d) {
      var ul = $("agents"); clear(ul);
      d.agents.forEach(function (a) {
        ul.appendChild(el("li", { "data-testid": "agent-item" }, a.display_name + " <" + a.email + "> · " + a.role + " · " + a.status +
          " · " + a.load + "/" + a.capacity + " · " + a.skills.join(",") + " · " + a.languages.join(",")));
      });
    });
    api("GET", "/api/v1/queues").then(function (d) {
      var ul = $("queues"); clear(ul);
      d.queues.forEach(function (q) {
        var li = el("li", { "data-testid": "queue-admin-item", "data-id": q.id }, q.name + " · " + q.skill + "/" + q.language + " · " +
          (q.open_now ? "offen / open" : "geschlossen / closed") + " · " + JSON.stringify(q.business_hours));
        var edit = el("button", { type: "button", "data-testid": "queue-edit" }, "Bearbeiten / Edit");
        edit.addEventListener("click", function () { editQueue(q); });
        li.appendChild(edit);
        ul.appendChild(li);
      });
    });
  }
  // The queue form creates a queue, or edits one (name and business hours; skill and language stay).
  var editing = null;
  function editQueue(q) {
    editing = q ? q.id : null;
    $("queue-form").reset();
    $("queue-skill").disabled = $("queue-language").disabled = !!q;
    $("queue-cancel").hidden = !q;
    $("queue-submit").textContent = q ? "Speichern / Save" : "Anlegen / Create";
    if (q) {
      $("queue-name").value = q.name;
      $("queue-skill").value = q.skill;
      $("queue-language").value = q.language;
      $("queue-hours").value = Object.keys(q.business_hours || {}).length ? JSON.stringify(q.business_hours, null, 1) : "";
      $("queue-name").focus();
    }
  }
  $("queue-cancel").addEventListener("click", function () { $("admin-error").textContent = ""; editQueue(null); });
  $("agent-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    $("admin-error").textContent = "";
    var split = function (v) { return v.split(",").map(function (x) { return x.trim(); }).filter(Boolean); };
    api("POST", "/api/v1/agents", {
      email: $("agent-email").value, display_name: $("agent-name").value, password: $("agent-password").value,
      role: $("agent-role").value, skills: split($("agent-skills").value), languages: split($("agent-languages").value),
      capacity: parseInt($("agent-capacity").value, 10)
    }).then(function () { $("agent-form").reset(); loadAdmin(); }).catch(function (e) { $("admin-error").textContent = e.message; });
  });
  $("queue-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    $("admin-error").textContent = "";
    var hours = {};
    if ($("queue-hours").value.trim()) {
      try { hours = JSON.parse($("queue-hours").value); } catch (e) { $("admin-error").textContent = "business hours: not valid JSON"; return; }
    }
    var req = editing
      ? api("PATCH", "/api/v1/queues/" + editing, { name: $("queue-name").value, business_hours: hours })
      : api("POST", "/api/v1/queues", { name: $("queue-name").value, skill: $("queue-skill").value, language: $("queue-language").value, business_hours: hours });
    req.then(function () { editQueue(null); loadAdmin(); }).catch(function (e) { $("admin-error").textContent = e.message; });
  });

  // --- start -------------------------------------------------------------------------------
  api("GET", "/api/v1/me").then(started).catch(showLogin);
})();
