// traffic-router dashboard: polls /admin/status, /admin/stats and /admin/events and draws them.
// No build step and no network beyond the router. Every server string goes into the page
// through textContent / setAttribute (the h() helper), never through innerHTML.
"use strict";

(() => {
  const POLL_MS = 1500;
  const PAGE_SIZE = 20;  // route cards per page; routes under way come first
  const ARM_MS = 6000;
  const TOKEN_KEY = "traffic-router.admin.api-token";
  const ACTIONS = ["promote", "pause", "resume", "rollback"];
  const SVG_NS = "http://www.w3.org/2000/svg";
  const COLORS = {
    stable: "#5aa9ff", primary: "#5aa9ff", blue: "#5aa9ff", default: "#5aa9ff",
    candidate: "#ffb347", shadow: "#d08cff", green: "#43d17a",
  };
  const PALETTE = ["#5aa9ff", "#ffb347", "#d08cff", "#43d17a", "#ff7eb6", "#f4e04d"];
  const BAD_EVENTS = new Set(["rollback", "config_reload_failed", "switch_refused"]);
  const GOOD_EVENTS = new Set(["rollout_step", "promote", "switch", "config_reload", "resume"]);

  const state = {
    status: null, stats: null, events: [], clockOffset: 0, updated: 0, failure: null,
    needToken: false, pending: null, armed: null, results: {}, timer: null,
    view: { route: "", phase: "", offset: 0 }, typing: null,
    evidence: {},  // "route/rule" -> the last EVIDENCE_POINTS checks of that rule, oldest first
  };
  const EVIDENCE_POINTS = 40;

  // ---- small helpers -------------------------------------------------------------------

  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = String(value);
      else if (key === "width") el.style.width = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function svg(tag, attrs) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
    return el;
  }

  const isNum = (v) => typeof v === "number" && Number.isFinite(v);
  const pct = (v, digits = 1) => (isNum(v) ? (v * 100).toFixed(digits) + "%" : "–");
  const ms = (v) => (isNum(v) ? (v < 10 ? v.toFixed(1) : Math.round(v).toString()) + " ms" : "–");
  const rate = (v) => (isNum(v) ? (v < 10 ? v.toFixed(2) : v.toFixed(1)) : "–");
  const num = (v) => (isNum(v) ? (Math.abs(v) < 100 ? +v.toPrecision(4) : Math.round(v)).toString() : "–");
  const colorOf = (variant, i) => COLORS[variant] || PALETTE[i % PALETTE.length];

  function duration(seconds) {
    if (!isNum(seconds) || seconds < 0) return "–";
    const s = Math.floor(seconds);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  }

  function ago(iso) {
    const at = Date.parse(iso || "");
    if (Number.isNaN(at)) return null;
    return (Date.now() + state.clockOffset - at) / 1000;
  }

  function clock(iso) {
    const at = Date.parse(iso || "");
    return Number.isNaN(at) ? "–" : new Date(at).toISOString().slice(11, 19) + "Z";
  }

  function short(value, max = 80) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    return text === undefined ? "" : text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  // ---- the admin API -------------------------------------------------------------------

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }

  function forgetToken() {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* storage unavailable */ }
  }

  async function api(path, options) {
    const headers = { Accept: "application/json" };
    if (options && options.body) headers["Content-Type"] = "application/json";
    const saved = token();
    if (saved) headers.Authorization = "Bearer " + saved;
    const response = await fetch(path, {
      ...(options || {}), headers, cache: "no-store", credentials: "same-origin",
    });
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    return { status: response.status, body };
  }

  // The page of routes to show: under way first, then the rest, filtered by name and phase.
  function routeQuery() {
    const params = new URLSearchParams({
      order: "active", limit: String(PAGE_SIZE), offset: String(state.view.offset),
    });
    if (state.view.route) params.set("route", state.view.route);
    if (state.view.phase) params.set("phase", state.view.phase);
    return "?" + params.toString();
  }

  function setView(change) {
    Object.assign(state.view, change);
    clearTimeout(state.typing);
    state.typing = setTimeout(() => { refresh(); }, 200);
  }

  function setupRouteTools() {
    $("route-filter").addEventListener("input", (e) => setView({ route: e.target.value.trim(), offset: 0 }));
    $("phase-filter").addEventListener("change", (e) => setView({ phase: e.target.value, offset: 0 }));
    $("page-prev").addEventListener("click", () =>
      setView({ offset: Math.max(0, state.view.offset - PAGE_SIZE) }));
    $("page-next").addEventListener("click", () => setView({ offset: state.view.offset + PAGE_SIZE }));
  }

  function renderPager(page) {
    const shown = Object.keys((state.status && state.status.routes) || {}).length;
    const first = page && shown ? page.offset + 1 : 0;
    $("page-label").textContent = page
      ? "routes " + first + "–" + (page.offset + shown) + " of " + page.matched.toLocaleString("en") +
        (page.matched !== page.total ? " matching (" + page.total.toLocaleString("en") + " in all)" : "") +
        " · " + page.active.toLocaleString("en") + " under way"
      : "";
    $("page-prev").disabled = !page || page.offset === 0;
    $("page-next").disabled = !page || page.offset + shown >= page.matched;
  }

  async function refresh() {
    if (state.needToken && !token()) return;
    try {
      const [status, stats, events] = await Promise.all([
        api("/admin/status" + routeQuery()), api("/admin/stats" + routeQuery()),
        api("/admin/events?limit=50"),
      ]);
      if ([status, stats, events].some((r) => r.status === 401)) {
        // A refused token is dropped, so polling stops until a new one is entered.
        const message = token() ? "The saved token was refused. Enter the admin token."
                                : "The admin API needs a token.";
        forgetToken();
        askToken(message);
        return;
      }
      if (status.status !== 200 || !status.body) throw new Error("/admin/status answered " + status.status);
      state.status = status.body;
      remember(state.status);
      state.stats = stats.status === 200 ? stats.body : null;
      state.events = events.status === 200 && events.body ? events.body.events || [] : [];
      if (state.stats && state.stats.generated_at) {
        const server = Date.parse(state.stats.generated_at);
        if (!Number.isNaN(server)) state.clockOffset = server - Date.now();
      }
      state.updated = Date.now();
      state.failure = null;
    } catch (err) {
      state.failure = String(err && err.message ? err.message : err);
    }
    render();
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = setTimeout(async () => { await refresh(); schedule(); }, POLL_MS);
  }

  async function act(route, action) {
    state.armed = null;
    if (state.needToken && !token()) {
      state.pending = { route, action };
      askToken("Enter the admin token to " + action + " " + route + ".");
      return;
    }
    state.results[route] = { kind: "busy", text: action + "…" };
    render();
    let result;
    try {
      result = await api("/admin/routes/" + encodeURIComponent(route) + "/" + action, {
        method: "POST", body: JSON.stringify({ reason: "dashboard: " + action }),
      });
    } catch (err) {
      state.results[route] = { kind: "bad", text: action + " failed: router unreachable" };
      render();
      return;
    }
    const body = result.body || {};
    if (result.status === 401) {
      forgetToken();
      state.pending = { route, action };
      state.results[route] = { kind: "bad", text: action + ": token refused" };
      askToken("The token was refused. Enter the admin token to " + action + " " + route + ".");
    } else if (result.status === 200) {
      const phase = body.status && body.status.phase ? " — phase now " + body.status.phase : "";
      state.results[route] = { kind: "good", text: action + " accepted" + phase };
    } else {
      const why = body.detail || body.error || "HTTP " + result.status;
      state.results[route] = { kind: "bad", text: action + " refused (" + result.status + "): " + why };
    }
    await refresh();
  }

  function onAction(route, action) {
    const armed = state.armed;
    if (armed && armed.route === route && armed.action === action && Date.now() < armed.until) {
      act(route, action);
    } else {
      state.armed = { route, action, until: Date.now() + ARM_MS };
      render();
      setTimeout(render, ARM_MS + 50);
    }
  }

  // ---- token panel ---------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function askToken(message) {
    state.needToken = true;
    $("token-message").textContent = message;
    const panel = $("token-panel");
    if (panel.hidden) {
      panel.hidden = false;
      $("token-input").value = "";
      $("token-input").focus();
    }
    render();
  }

  function setupToken() {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token-input").value.trim();
      if (!value) { $("token-message").textContent = "The token is empty."; return; }
      try { sessionStorage.setItem(TOKEN_KEY, value); } catch (e) { /* private mode */ }
      $("token-input").value = "";
      $("token-panel").hidden = true;
      state.needToken = false;
      const pending = state.pending;
      state.pending = null;
      if (pending) act(pending.route, pending.action); else refresh();
    });
    $("token-clear").addEventListener("click", () => {
      forgetToken();
      $("token-message").textContent = "Token forgotten.";
    });
    $("token-cancel").addEventListener("click", () => { $("token-panel").hidden = true; });
    $("token-button").addEventListener("click", () => {
      askToken(token() ? "A token is saved for this tab. Enter a new one to replace it." : "");
    });
  }

  // ---- what is wrong -------------------------------------------------------------------

  function problems(name, route, live, drift) {
    const bad = [];
    const warn = [];
    const analysis = route.analysis || {};
    const last = analysis.last;
    if (route.phase === "rolled_back") bad.push("rolled back");
    if (last && last.ok === false) bad.push("analysis failing");
    else if (analysis.consecutive_failures > 0) warn.push(analysis.consecutive_failures + " failed check(s)");
    if (route.refused) bad.push("switch refused");
    if (route.pending_switch) warn.push("switch pending");
    if (route.phase === "paused") warn.push("paused");
    if (route.phase === "waiting") warn.push("waiting for promote");
    const backends = (state.status && state.status.backends) || {};
    for (const backend of Object.values(route.backends || {})) {
      const info = backends[backend];
      if (info && info.healthy === false) bad.push(backend + " down");
    }
    for (const [variant, numbers] of Object.entries(live || {})) {
      if (!numbers || numbers.requests < 5 || !isNum(numbers.error_rate)) continue;
      if (numbers.error_rate >= 0.05) bad.push(variant + " errors " + pct(numbers.error_rate));
      else if (numbers.error_rate >= 0.01) warn.push(variant + " errors " + pct(numbers.error_rate));
    }
    if (drift && (drift.drifting || []).length) warn.push("input drift: " + drift.drifting.join(", "));
    const shadow = route.shadow;
    if (shadow && isNum(shadow.agreement_rate) && shadow.agreement_rate < 0.95) {
      warn.push("shadow agreement " + pct(shadow.agreement_rate));
    }
    return { bad, warn, level: bad.length ? "bad" : warn.length ? "warn" : "ok" };
  }

  // ---- drawing -------------------------------------------------------------------------

  function weightBar(weights, order) {
    const bar = h("div", { class: "weightbar", role: "img" });
    const legend = h("div", { class: "legend" });
    const parts = [];
    order.forEach((variant, i) => {
      const w = Number(weights[variant] || 0);
      parts.push(variant + " " + num(w) + "%");
      if (w > 0) {
        bar.append(h("div", { class: "segment", width: w + "%", style: null,
          "data-variant": variant, title: variant + " " + num(w) + "%" },
          w >= 12 ? variant + " " + num(w) + "%" : ""));
        bar.lastChild.style.background = colorOf(variant, i);
      }
      legend.append(h("span", { class: "legend-item", "data-variant": variant, "data-weight": num(w) },
        h("span", { class: "dot" }), variant + " " + num(w) + "%"));
      legend.lastChild.firstChild.style.background = colorOf(variant, i);
    });
    bar.setAttribute("aria-label", "traffic: " + parts.join(", "));
    return h("div", { class: "weights" }, bar, legend);
  }

  function sparkline(title, series, order, key, floor, format) {
    const W = 260;
    const H = 56;
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", class: "spark",
      role: "img", "aria-label": title + " over 15 minutes" });
    let max = floor;
    for (const v of order) for (const x of (series[v] || {})[key] || []) if (isNum(x) && x > max) max = x;
    chart.append(svg("line", { x1: 0, y1: H - 1, x2: W, y2: H - 1, class: "axis",
      "vector-effect": "non-scaling-stroke" }));
    const latest = [];
    order.forEach((variant, i) => {
      const values = (series[variant] || {})[key] || [];
      const n = values.length;
      let points = [];
      const flush = () => {
        if (points.length === 1) {  // a lone point: a short dash
          const [x, y] = points[0].split(",").map(Number);
          points = [(x - 1.5).toFixed(1) + "," + y, (x + 1.5).toFixed(1) + "," + y];
        }
        if (points.length > 1) {
          chart.append(svg("polyline", { points: points.join(" "), fill: "none",
            stroke: colorOf(variant, i), "stroke-width": 2, "stroke-linejoin": "round",
            "vector-effect": "non-scaling-stroke" }));
        }
        points = [];
      };
      values.forEach((v, j) => {
        if (!isNum(v)) { flush(); return; }
        const x = n > 1 ? (j / (n - 1)) * W : W;
        const y = H - 3 - (v / max) * (H - 6);
        points.push(x.toFixed(1) + "," + y.toFixed(1));
      });
      flush();
      const last = [...values].reverse().find(isNum);
      latest.push(h("span", { class: "spark-value" }, h("span", { class: "dot" }), format(last)));
      latest[latest.length - 1].firstChild.style.background = colorOf(variant, i);
    });
    return h("figure", { class: "sparkbox" },
      h("figcaption", {}, h("span", { class: "spark-title" }, title), " ", latest,
        h("span", { class: "spark-max" }, "max " + format(max === floor ? null : max))),
      chart);
  }

  function healthCells(health) {
    if (!health) return [h("td", { text: "–" }), h("td", { text: "–" }), h("td", { text: "–" })];
    const inputs = h("td", { class: health.missing_values || health.invalid_inputs ? "warn-text" : "" },
      "missing " + health.missing_values + " · invalid " + health.invalid_inputs,
      h("div", { class: "sub", text: health.inspected + " inspected" }));
    const outputs = h("td", { class: health.null_outputs ? "warn-text" : "", text: "null " + health.null_outputs });
    const labels = Object.entries(health.labels || {}).sort((a, b) => b[1] - a[1]);
    const total = labels.reduce((sum, [, n]) => sum + n, 0);
    let predictions = "–";
    if (total) {
      predictions = labels.slice(0, 4).map(([label, n]) => short(label, 16) + ": " + pct(n / total, 0)).join(" · ");
      if (labels.length > 4) predictions += " · …";
    } else if (health.values && health.values.count) {
      const v = health.values;
      predictions = "mean " + num(v.mean) + " (" + v.count + " values)";
    }
    return [inputs, outputs, h("td", { class: "predictions", text: predictions })];
  }

  // Accuracy (classifiers) or mean absolute error (regressors) from the labels sent back.
  function truthCell(feedback, variant) {
    const tally = ((feedback && feedback.variants) || {})[variant];
    if (!tally || !tally.labels) return h("td", { class: "truth", text: "no labels yet" });
    const main = isNum(tally.accuracy) ? pct(tally.accuracy, 1) : "MAE " + num(tally.mae);
    return h("td", { class: "truth", "data-accuracy": isNum(tally.accuracy) ? tally.accuracy : "" },
      h("strong", { text: main }),
      h("div", { class: "sub", text: tally.labels + " labels / " + duration(feedback.window_s) }));
  }

  // Time to first token p50/p99 and completion tokens per second of one variant.
  function streamCells(stream) {
    const s = stream || {};
    return [h("td", { class: "ttft", text: ms(s.ttft_p50_ms) }),
      h("td", { class: "ttft", text: ms(s.ttft_p99_ms) }),
      h("td", { class: "tokens", text: isNum(s.tokens_per_s) ? num(s.tokens_per_s) : "–" })];
  }

  function variantTable(name, route, stats, order) {
    const live = (stats && stats.variants) || {};
    const health = (stats && stats.health) || {};
    const backends = (state.status && state.status.backends) || {};
    // Streaming (LLM) traffic: time to first token and tokens/s after the latency columns.
    const streaming = order.some((variant) => live[variant] && live[variant].stream);
    const columns = ["version", "weight", "req/s", "errors", "p50", "p99",
      ...(streaming ? ["TTFT p50", "TTFT p99", "tokens/s"] : []), "inputs", "outputs",
      "predictions"];
    if (route.feedback) columns.push("accuracy");
    const head = h("tr", {}, columns.map((t) => h("th", { scope: "col", text: t })));
    const rows = order.map((variant, i) => {
      const numbers = live[variant] || {};
      const backend = (route.backends || {})[variant];
      const down = backend && backends[backend] && backends[backend].healthy === false;
      const errClass = numbers.requests >= 5 && numbers.error_rate >= 0.05 ? "bad-text"
        : numbers.requests >= 5 && numbers.error_rate >= 0.01 ? "warn-text" : "";
      const weight = (route.weights || {})[variant];
      const label = h("th", { scope: "row" }, h("span", { class: "dot" }), variant,
        backend ? h("div", { class: "sub", text: backend }) : null,
        down ? h("span", { class: "pill bad", text: "DOWN" }) : null);
      label.firstChild.style.background = colorOf(variant, i);
      return h("tr", { "data-variant": variant }, label,
        h("td", { text: weight === undefined ? "–" : num(weight) + "%" }),
        h("td", { text: rate(numbers.rps) }),
        h("td", { class: errClass, text: pct(numbers.error_rate, 2) }),
        h("td", { text: ms(numbers.p50_ms) }),
        h("td", { text: ms(numbers.p99_ms) }),
        streaming ? streamCells(numbers.stream) : null,
        healthCells(health[variant]),
        route.feedback ? truthCell(route.feedback, variant) : null);
    });
    return h("table", { class: "variants" }, h("thead", {}, head), h("tbody", {}, rows));
  }

  function details(name, route) {
    const out = [];
    if (isNum(route.step) && isNum(route.steps)) {
      const dots = h("span", { class: "steps" });
      for (let i = 0; i < route.steps; i++) {
        dots.append(h("span", { class: "step " + (i < route.step ? "done" : i === route.step ? "now" : "") }));
      }
      out.push(h("div", { class: "line" }, h("strong", { text: "step " + (route.step + 1) + " of " + route.steps }),
        dots, "in this step for " + duration(ago(route.since))));
    } else if (route.since) {
      out.push(h("div", { class: "line", text: "in phase " + route.phase + " for " + duration(ago(route.since)) }));
    }
    if (route.active) {
      out.push(h("div", { class: "line" }, "active ", h("strong", { text: route.active }),
        route.previous ? " · previous " + route.previous : "",
        route.last_switch ? " · last switch " + clock(route.last_switch) : "",
        route.pending_switch ? h("span", { class: "pill warn", text: "switch pending → " + route.pending_switch }) : null));
      if (route.refused) out.push(h("div", { class: "line bad-text", text: "switch refused: " + route.refused }));
    }
    const shadow = route.shadow;
    if (shadow) {
      const lat = shadow.latency_ms || {};
      const p = lat.primary || {};
      const s = lat.shadow || {};
      out.push(h("div", { class: "line" }, "shadow agreement ",
        h("strong", { class: isNum(shadow.agreement_rate) && shadow.agreement_rate < 0.95 ? "warn-text" : "",
          text: pct(shadow.agreement_rate, 2) }),
        " · label flips " + pct(shadow.label_flip_rate, 2) +
        " · p99 primary " + ms(p.p99) + " / shadow " + ms(s.p99)));
      const counts = ["mirrored", "compared", "matched", "mismatched", "errors", "dropped", "skipped"]
        .filter((k) => k in shadow).map((k) => k + " " + shadow[k]).join(" · ");
      out.push(h("div", { class: "line sub", text: counts }));
    }
    if (route.shadow_first) out.push(shadowFirst(route.shadow_first));
    const analysis = route.analysis;
    if (analysis) {
      const last = analysis.last;
      const verdict = !last ? "no check yet" : last.ok === true ? "PASS" : last.ok === false ? "FAIL" : "HOLD";
      const cls = !last ? "" : last.ok === true ? "good-text" : last.ok === false ? "bad-text" : "warn-text";
      const box = h("div", { class: "analysis" }, "last analysis ", h("strong", { class: cls, text: verdict }),
        last ? " at " + clock(last.at) + (isNum(last.window_s) ? " over " + duration(last.window_s) : "") : "",
        analysis.consecutive_failures ? h("span", { class: "pill bad", text: analysis.consecutive_failures + " consecutive failures" }) : null);
      if (last && last.checks && last.checks.length) {
        box.append(h("div", { class: "checks" }, last.checks.map((c) => checkRow(name, c))));
      } else if (last && last.reasons && last.reasons.length) {
        box.append(h("ul", { class: "reasons" }, last.reasons.map((r) => h("li", { text: short(r, 200) }))));
      }
      if (last && last.numbers && Object.keys(last.numbers).length) {
        box.append(h("div", { class: "sub", text: Object.entries(last.numbers)
          .map(([k, v]) => k + "=" + (isNum(v) ? num(v) : short(v, 20))).join(" · ") }));
      }
      out.push(box);
    }
    return out;
  }

  // ---- evidence: each check's running statistic against its boundary ------------------------

  // A check's point: its statistic, and for the sequential judge the interval [low, high].
  function point(check) {
    const n = check.numbers || {};
    const low = n[check.rule + "_low"];
    const high = n[check.rule + "_high"];
    return { stat: isNum(check.statistic) ? check.statistic : null, low: isNum(low) ? low : null,
      high: isNum(high) ? high : null, outcome: check.outcome };
  }

  function remember(status) {
    for (const [name, route] of Object.entries((status && status.routes) || {})) {
      const last = route.analysis && route.analysis.last;
      if (!last || !last.checks) continue;
      for (const check of last.checks) {
        const key = name + "/" + check.rule;
        const seen = state.evidence[key] || (state.evidence[key] = []);
        if (seen.length && seen[seen.length - 1].at === last.at) continue;
        seen.push({ at: last.at, ...point(check) });
        if (seen.length > EVIDENCE_POINTS) seen.shift();
      }
    }
  }

  // A sparkline of the statistic (and the band of its interval) with the boundary dashed.
  function evidenceChart(history, boundary) {
    const W = 160;
    const H = 30;
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", class: "evidence",
      role: "img", "aria-label": "the statistic over the last checks against its limit " + num(boundary) });
    const values = [boundary];
    for (const p of history) for (const v of [p.stat, p.low, p.high]) if (isNum(v)) values.push(v);
    let lo = Math.min(0, ...values);
    let hi = Math.max(...values);
    if (hi - lo < 1e-9) hi = lo + 1;
    const y = (v) => (H - 2 - ((v - lo) / (hi - lo)) * (H - 4)).toFixed(1);
    const x = (i) => (history.length > 1 ? (i / (history.length - 1)) * W : W).toFixed(1);
    const band = history.map((p, i) => [i, p]).filter(([, p]) => isNum(p.low) && isNum(p.high));
    if (band.length > 1) {
      const top = band.map(([i, p]) => x(i) + "," + y(p.high));
      const bottom = band.slice().reverse().map(([i, p]) => x(i) + "," + y(p.low));
      chart.append(svg("polygon", { points: top.concat(bottom).join(" "), class: "band" }));
    }
    const line = history.map((p, i) => [i, p]).filter(([, p]) => isNum(p.stat))
      .map(([i, p]) => x(i) + "," + y(p.stat));
    if (line.length > 1) {
      chart.append(svg("polyline", { points: line.join(" "), class: "stat", fill: "none",
        "vector-effect": "non-scaling-stroke" }));
    }
    chart.append(svg("line", { x1: 0, x2: W, y1: y(boundary), y2: y(boundary), class: "boundary",
      "vector-effect": "non-scaling-stroke" }));
    return chart;
  }

  function checkRow(routeName, check) {
    const cls = check.outcome === "pass" ? "good" : check.outcome === "fail" ? "bad" : "warn";
    const history = state.evidence[routeName + "/" + check.rule] || [point(check)];
    return h("div", { class: "check", "data-rule": check.rule, "data-outcome": check.outcome },
      h("span", { class: "pill " + cls, text: check.outcome }),
      h("span", { class: "check-text", text: short(check.explanation || check.rule, 220) }),
      isNum(check.boundary) ? evidenceChart(history, check.boundary) : null);
  }

  function shadowFirst(first) {
    const share = isNum(first.compared) && first.min_compared ? Math.min(first.compared / first.min_compared, 1) : 0;
    const bar = h("div", { class: "progress", title: "comparisons made" }, h("div", { width: (share * 100).toFixed(1) + "%" }));
    return h("div", { class: "analysis shadow-first" },
      h("strong", { text: "shadow first" }), " · compared " + (first.compared || 0) + " of " + first.min_compared +
      " · agreement " + pct(first.agreement, 1) + " (min " + pct(first.min_agreement, 1) + ")" +
      (isNum(first.max_label_flip_rate) ? " · label flips " + pct(first.label_flip_rate, 1) +
        " (max " + pct(first.max_label_flip_rate, 1) + ")" : ""),
      bar, first.explanation ? h("div", { class: "sub", text: first.explanation }) : null);
  }

  // ---- input drift: the most drifting features, reference and live histograms side by side ----

  const REF_COLOR = "#8b96a5";
  const LIVE_COLOR = "#ffb347";

  function psiClass(psi, limit) {
    if (!isNum(psi)) return "";
    return psi > limit ? "bad-text" : psi >= 0.1 ? "warn-text" : "good-text";
  }

  function histogram(feature) {
    const W = 300;
    const H = 90;
    const n = feature.bins.length;
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", class: "hist", role: "img",
      "aria-label": feature.name + ": reference and live share per bin" });
    const max = Math.max(0.01, ...feature.reference, ...feature.live);
    const slot = W / Math.max(n, 1);
    const bar = Math.max(1, slot * 0.38);
    chart.append(svg("line", { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: "axis" }));
    feature.bins.forEach((bin, i) => {
      [[feature.reference[i], REF_COLOR, 0], [feature.live[i], LIVE_COLOR, 1]].forEach(([share, color, k]) => {
        const height = (share / max) * (H - 4);
        const rect = svg("rect", { x: (i * slot + slot * 0.1 + k * bar).toFixed(1),
          y: (H - 1 - height).toFixed(1), width: bar.toFixed(1), height: height.toFixed(1), fill: color,
          "data-side": k ? "live" : "reference" });
        const tip = svg("title", {});
        tip.textContent = bin + ": " + (k ? "live " : "reference ") + pct(share, 1);
        rect.append(tip);
        chart.append(rect);
      });
    });
    const ends = n > 1 ? h("div", { class: "hist-ends" },
      h("span", { text: short(feature.bins[0], 24) }), h("span", { text: short(feature.bins[n - 1], 24) })) : null;
    return [chart, ends];
  }

  function driftPanel(name, drift) {
    if (!drift) return null;
    const ref = drift.reference || {};
    const source = ref.source === "pinned" ? "pinned " + clock(ref.pinned_at) : ref.source;
    const head = h("div", { class: "drift-head" },
      h("h3", { text: "Input drift" }),
      h("span", { class: "sub", text: "reference: " + source + " · " + ref.rows + " rows" +
        (ref.ready ? "" : " (filling)") + " · live window " + duration(drift.window_s) +
        " · alert above PSI " + drift.max_psi }),
      h("span", { class: "legend-item" }, h("span", { class: "dot ref" }), "reference"),
      h("span", { class: "legend-item" }, h("span", { class: "dot live" }), "live"),
      (drift.drifting || []).length ? h("span", { class: "pill bad", text: drift.drifting.length + " drifting" }) : null);
    const cards = (drift.features || []).map((f) => {
      const miss = f.missing || {};
      return h("figure", { class: "drift-feature", "data-feature": f.name },
        h("figcaption", {},
          h("strong", { text: short(f.name, 32) }),
          h("span", { class: psiClass(f.psi, drift.max_psi), text: isNum(f.psi) ? "PSI " + f.psi.toFixed(2) : "PSI –" }),
          h("span", { class: "sub", text: "missing " + pct(miss.reference, 0) + " → " + pct(miss.live, 0) })),
        histogram(f));
    });
    return h("section", { class: "drift", "data-drift-route": name }, head,
      cards.length ? h("div", { class: "drift-grid" }, cards) : h("div", { class: "sub", text: "no inputs sampled yet" }));
  }

  function actions(name) {
    const armed = state.armed && state.armed.route === name && Date.now() < state.armed.until ? state.armed.action : null;
    const buttons = ACTIONS.map((action) => h("button", {
      type: "button", class: "action " + action + (armed === action ? " armed" : ""),
      "data-action": action, onclick: () => onAction(name, action),
      text: armed === action ? "Confirm " + action + "?" : action,
    }));
    const result = state.results[name];
    return h("div", { class: "actions" }, buttons,
      result ? h("span", { class: "result " + result.kind, role: "status", text: result.text }) : null);
  }

  function renderRoute(name, route) {
    const stats = state.stats && state.stats.routes ? state.stats.routes[name] : null;
    const order = [...new Set([...Object.keys(route.weights || {}),
      ...Object.keys((stats && stats.variants) || {})])];
    const found = problems(name, route, stats && stats.variants, stats && stats.drift);
    const phase = String(route.phase || "unknown");
    const head = h("div", { class: "route-head" },
      h("h2", { text: name }),
      h("span", { class: "strategy", text: route.strategy || "" }),
      h("span", { class: "phase phase-" + phase.replace(/[^a-z_]/g, ""), "data-phase": phase, text: phase.replace("_", " ") }),
      found.bad.length || found.warn.length
        ? h("span", { class: "problems " + found.level, text: [...found.bad, ...found.warn].join(" · ") }) : null);
    const charts = stats && stats.series ? h("div", { class: "sparks" },
      sparkline("req/s", stats.series, order, "rps", 1, rate),
      sparkline("error rate", stats.series, order, "error_rate", 0.01, (v) => pct(v, 1)),
      sparkline("p99", stats.series, order, "p99_ms", 10, ms)) : null;
    return h("article", { class: "route " + found.level, "data-route": name, "data-phase": phase },
      head,
      route.message ? h("div", { class: "message", text: route.message }) : null,
      weightBar(route.weights || {}, Object.keys(route.weights || {}).length ? Object.keys(route.weights) : order),
      details(name, route),
      variantTable(name, route, stats, order),
      charts,
      driftPanel(name, stats && stats.drift),
      actions(name));
  }

  function renderSummary() {
    const box = $("summary");
    box.replaceChildren();
    const status = state.status;
    if (state.failure) {
      const since = state.updated ? " — data below is " + duration((Date.now() - state.updated) / 1000) + " old" : "";
      box.className = "summary bad";
      box.append("Cannot reach the router: " + state.failure + since);
      return;
    }
    if (!status) { box.className = "summary"; return; }
    const bad = [];
    const warn = [];
    for (const [name, route] of Object.entries(status.routes || {})) {
      const stats = state.stats && state.stats.routes ? state.stats.routes[name] : null;
      const found = problems(name, route, stats && stats.variants, stats && stats.drift);
      if (found.bad.length) bad.push(name + ": " + found.bad.join(", "));
      else if (found.warn.length) warn.push(name + ": " + found.warn.join(", "));
    }
    const reload = (status.config || {}).last_reload || {};
    if (reload.ok === false) bad.push("config reload failed: " + short(reload.error || "", 160));
    const store = status.state_store || {};
    if (store.ok === false) bad.push("state store failing (serving the last state known): " + short(store.error || "", 160));
    const total = Object.keys(status.routes || {}).length;
    const paged = status.page && status.page.matched > total;
    box.className = "summary " + (bad.length ? "bad" : warn.length ? "warn" : "ok");
    if (!bad.length && !warn.length) {
      box.append(paged ? "No problem in the " + total + " routes shown" : "All " + total + " routes healthy");
    }
    for (const line of bad) box.append(h("div", { text: "✖ " + line }));
    for (const line of warn) box.append(h("div", { text: "▲ " + line }));
  }

  function renderEvents() {
    const list = $("events");
    list.replaceChildren();
    if (!state.events.length) { list.append(h("li", { class: "sub", text: "no events yet" })); return; }
    for (const event of state.events) {
      const kind = String(event.event || "");
      const failed = event.outcome === "fail" || event.ok === false || event.healthy === false;
      const cls = BAD_EVENTS.has(kind) || failed ? "bad" : GOOD_EVENTS.has(kind) ? "good"
        : kind === "pause" ? "warn" : "";
      const extra = Object.entries(event).filter(([k]) => !["at", "event", "route", "reason"].includes(k))
        .map(([k, v]) => k + "=" + short(v, 60)).join(" ");
      list.append(h("li", { class: "event " + cls },
        h("time", { datetime: event.at || "", text: clock(event.at) }),
        h("span", { class: "event-kind", text: kind }),
        event.route ? h("strong", { text: event.route }) : null,
        h("span", { class: "event-reason", text: short(event.reason || "", 200) }),
        extra ? h("span", { class: "sub", title: short(extra, 2000), text: extra }) : null));
    }
  }

  function fleetMeta(status) {
    // Replica, leader, store health, and the fleet's replicas with their config versions.
    const replica = status.replica || {};
    const store = status.state_store || {};
    const members = (status.fleet && status.fleet.replicas) || [];
    const versions = members.map((m) => m.id + (m.leader ? " (leader)" : "") + ": config " + m.config_version + ", seen " + clock(m.last_seen));
    return h("span", { id: "fleet-meta", title: versions.join("\n"),
      class: store.ok === false ? "bad-text" : "",
      text: " · replica " + (replica.id || "?") + (replica.leader ? " (leader)" : "") +
        " · store " + (store.kind || "?") + (store.ok === false ? " FAILING" : " ok") +
        (members.length > 1 ? " · " + members.length + " replicas" : "") });
  }

  function render() {
    renderSummary();
    const status = state.status;
    const meta = $("meta");
    if (status) {
      const config = status.config || {};
      const reload = config.last_reload || {};
      meta.replaceChildren(
        h("span", { text: "config " + (config.version || "?") }),
        h("span", { class: reload.ok === false ? "bad-text" : "", text: " · last reload " +
          (reload.ok === false ? "FAILED " : "") + clock(reload.at) }),
        fleetMeta(status),
        h("span", { text: " · updated " + (state.updated ? new Date(state.updated).toLocaleTimeString() : "–") }));
      const routes = $("routes");
      routes.replaceChildren(...Object.entries(status.routes || {}).map(([name, route]) => renderRoute(name, route)));
      renderPager(status.page);
    } else if (state.needToken) {
      meta.textContent = "waiting for the admin token";
    }
    renderEvents();
  }

  document.addEventListener("DOMContentLoaded", () => {
    setupToken();
    setupRouteTools();
    refresh().then(schedule);
  });
})();
