// The HTML report's only script, inlined by reports/html_report.py (hash-pinned by CSP).
// Evidence is untrusted: it is only ever set with textContent, never parsed as HTML.
"use strict";
(function () {
  const cells = JSON.parse(document.getElementById("cells-data").textContent);
  const boxes = Array.from(document.querySelectorAll("#grid button.c"));
  const checks = Array.from(document.querySelectorAll("#filters input[type=checkbox]"));
  const rows = Array.from(document.querySelectorAll("#grid tbody tr"));
  const sections = Array.from(document.querySelectorAll("#grid section.target"));
  const shown = document.getElementById("shown-count");
  const panel = document.getElementById("panel");
  const body = document.getElementById("panel-body");
  let selected = null;

  function applyFilters() {
    const on = { t: new Set(), p: new Set(), c: new Set(), o: new Set() };
    for (const box of checks) if (box.checked) on[box.dataset.dim].add(box.value);
    let count = 0;
    for (const b of boxes) {
      const d = b.dataset;
      const visible = on.t.has(d.t) && on.p.has(d.p) && on.c.has(d.c) && on.o.has(d.o);
      b.hidden = !visible;
      if (visible) count += 1;
    }
    for (const row of rows) row.hidden = !row.querySelector("button.c:not([hidden])");
    for (const sec of sections) sec.hidden = !sec.querySelector("tbody tr:not([hidden])");
    shown.textContent = String(count);
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  const present = (v) => v !== null && v !== undefined && v !== "" && !(Array.isArray(v) && v.length === 0);
  function fields(pairs) {
    const dl = el("dl");
    for (const [k, v] of pairs) {
      if (!present(v)) continue;
      dl.append(el("dt", k), el("dd", Array.isArray(v) ? v.join(", ") : v));
    }
    return dl.childElementCount ? dl : el("p", "none recorded", "none");
  }
  function table(obj, formatter) {
    const entries = Object.entries(obj || {}).filter(([, v]) => present(v));
    if (!entries.length) return el("p", "none recorded", "none");
    const t = el("table");
    for (const [k, v] of entries) {
      const tr = el("tr");
      tr.append(el("th", k), el("td", formatter ? formatter(v) : (Array.isArray(v) ? v.join(", ") : v)));
      t.append(tr);
    }
    return t;
  }
  const block = (text) => (present(text) ? el("pre", text) : el("p", "none recorded", "none"));
  function part(title, ...children) {
    const s = el("section");
    s.append(el("h3", title), ...children);
    return s;
  }
  const ms = (v) => (v * 1000).toFixed(1) + " ms";
  const TIMING_NAMES = { connect_s: "connect", tls_s: "TLS", upgrade_s: "upgrade", first_byte_s: "first byte",
    total_s: "total" };
  const timingLabels = (t) => Object.fromEntries(Object.entries(t).map(([k, v]) => [TIMING_NAMES[k] || k, v]));

  function openCell(index, button) {
    const c = cells[index];
    const k = c.key, ev = c.evidence, x = c.expectation, id = ev.identity;
    const title = el("h2", [k.target, k.path, k.protocol, k.operation, k.client].join("-"));
    const badge = el("span", c.outcome, "badge o-" + c.outcome);
    body.replaceChildren(
      title,
      badge,
      fields([
        ["target", k.target], ["path", k.path], ["protocol", k.protocol], ["operation", k.operation],
        ["client", k.client + (c.client_version ? " " + c.client_version : "")],
        ["outcome", c.outcome], ["error class", c.error_class], ["why", c.message],
        ["expected", x.outcome + (x.error_class ? " with " + x.error_class : "")],
        ["expected because", x.reason], ["declared in", x.source], ["duration", ms(c.duration_s)],
      ]),
      part("Upgrade", fields([
        ["requested", ev.protocol_requested], ["negotiated", ev.protocol_negotiated], ["fallback", ev.fallback],
        ["status line", ev.status_line], ["exit code", ev.exit_code],
      ])),
      part("Response headers", table(ev.response_headers)),
      part("Error", block(ev.error)),
      part("Body excerpt", block(ev.body_excerpt)),
      part("Identity seen by the API server", id ? fields([
        ["user", id.user], ["groups", id.groups], ["uid", id.uid], ["authenticated as", id.authenticated_as],
        ["authenticated groups", id.authenticated_groups], ["credential id", id.credential_id], ["source", id.source],
      ]) : el("p", "not recorded", "none"), id && present(Object.keys(id.extra)) ? table(id.extra) : el("span")),
      part("Audit trail through the proxy", ev.audit_trail ? fields([
        ["audit trail", ev.audit_trail],
        ["proxy authenticated", ev.proxy_identity ? ev.proxy_identity.user : null],
        ["proxy saw groups", ev.proxy_identity ? ev.proxy_identity.groups : null],
      ]) : el("p", "no proxy audit log for this target", "none")),
      part("Timings", table(timingLabels(ev.timings), ms)),
      part("Bytes", fields([["sent", ev.bytes_sent], ["verified", ev.bytes_verified]])),
      part("Notes", ev.notes.length ? block(ev.notes.join("\n")) : el("p", "none", "none")),
      part("Transcript", block(ev.transcript.join("\n"))),
    );
    if (selected) selected.classList.remove("selected");
    selected = button && button.classList.contains("c") ? button : null;
    if (selected) selected.classList.add("selected");
    panel.hidden = false;
    panel.scrollTop = 0;
  }

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const cellButton = target.closest("button[data-i]");
    if (cellButton) return openCell(Number(cellButton.dataset.i), cellButton);
    if (target.id === "panel-close") {
      panel.hidden = true;
      if (selected) selected.classList.remove("selected");
      return;
    }
    const bulk = target.closest("button[data-bulk]");
    if (bulk) {
      const fieldset = bulk.closest("fieldset");
      for (const box of fieldset.querySelectorAll("input[type=checkbox]")) box.checked = bulk.dataset.bulk === "all";
      applyFilters();
    }
  });
  document.addEventListener("change", (event) => {
    if (event.target instanceof HTMLInputElement && event.target.type === "checkbox") applyFilters();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") panel.hidden = true;
  });
  applyFilters();
})();
