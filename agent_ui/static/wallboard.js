// The supervisor's wallboard: live figures pushed over the socket, drawn as text only.
"use strict";

(() => {
  const { byId, setText, el, clear, row, since } = cti;
  let latest = null;
  const expanded = new Set();  // calls whose live transcript this board follows
  const transcripts = new Map();  // linkedid -> { lines: [...], saying: {speaker: text} }
  const socket = cti.connect("wallboard", onMessage, (status) => {
    setText("board-status", status);
    if (status === "live") for (const key of expanded) follow(key, true);  // after a reconnect
  });

  function onMessage(m) {
    if (m.type === "wallboard") { latest = m; draw(); }
    else if (m.type === "transcript_so_far") {
      transcripts.set(m.linkedid, { lines: m.lines, saying: m.saying });
      if (latest) draw();
    } else if (m.type === "transcript") { heard(m); if (latest) draw(); }
    else if (m.type === "alert") { if (latest) { alerted(m.alert); draw(); } }
    else if (m.type === "info") setText("message", m.message);
    else if (m.type === "error") setText("message", m.message);
  }

  function heard(m) {
    const t = transcripts.get(m.linkedid) || { lines: [], saying: {} };
    if (m.final) {
      delete t.saying[m.speaker];
      if (m.text) t.lines.push({ speaker: m.speaker, text: m.text });
      if (t.lines.length > 40) t.lines.shift();
    } else t.saying[m.speaker] = m.text;
    transcripts.set(m.linkedid, t);
  }

  // A live alert, sent as it happens (the view's push is throttled): shown at once, in place of
  // the same call's alert of that kind if the view has it already.
  function alerted(alert) {
    const same = (a) => a.kind === alert.kind && a.node === alert.node && a.linkedid === alert.linkedid;
    latest.alerts = latest.alerts.filter((a) => !same(a)).concat([alert]);
  }

  function follow(key, on) {
    const [node, linkedid] = JSON.parse(key);
    socket.send({ type: "transcript", node, linkedid, follow: on });
  }

  function toggle(c) {
    const key = JSON.stringify([c.node, c.linkedid]);
    const on = !expanded.has(key);
    if (on) expanded.add(key); else { expanded.delete(key); transcripts.delete(c.linkedid); }
    follow(key, on);
    draw();
  }

  function transcriptRow(c) {
    const t = transcripts.get(c.linkedid) || { lines: [], saying: {} };
    const box = el("div", null, "transcript-live");
    box.dataset.linkedid = c.linkedid;
    for (const line of t.lines) box.appendChild(el("div", line.speaker + ": " + line.text, "said"));
    for (const [speaker, text] of Object.entries(t.saying)) {
      if (text) box.appendChild(el("div", speaker + ": " + text + " …", "saying"));
    }
    if (!box.firstChild) box.appendChild(el("div", "nothing said yet", "muted"));
    const tr = document.createElement("tr");
    const td = el("td");
    td.colSpan = 8;
    td.appendChild(box);
    tr.appendChild(td);
    return tr;
  }

  function alertText(a) {
    if (a.kind === "complaint") {
      return "Complaint (" + a.severity + ", " + a.category + ", " + Math.round(a.probability * 100) +
        " %) on the call of " + (a.caller || "?") + (a.agent ? " with " + a.agent : "") +
        (a.said ? ": “" + a.said + "”" : "");
    }
    if (a.kind === "staffing") return a.message;
    return "Long wait in " + a.queue + ": " + a.seconds + " s";
  }

  // With routing on: a waiting call's priority and the supervisor's two controls of it.
  function routingCell(c) {
    const box = el("span", null, "routing");
    const r = c.routing;
    if (!r) return box;
    box.appendChild(el("span", "priority " + r.priority + (r.adjust ? " (" + (r.adjust > 0 ? "+" : "") + r.adjust + ")" : "") +
      (r.moved_to ? " · for " + r.moved_to : "") + " "));
    const adjust = el("input");
    adjust.type = "number"; adjust.min = "-3600"; adjust.max = "3600"; adjust.step = "10";
    adjust.value = String(r.adjust || 0); adjust.className = "adjust";
    adjust.setAttribute("aria-label", "Priority change in seconds");
    const set = el("button", "set priority", "set-priority");
    set.addEventListener("click", () => socket.send({
      type: "call_priority", node: c.node, linkedid: c.linkedid, adjust: Number(adjust.value) }));
    const agent = el("input");
    agent.placeholder = "ext"; agent.maxLength = 10; agent.className = "move-to";
    agent.setAttribute("aria-label", "Move to agent extension");
    const move = el("button", "move", "move");
    move.addEventListener("click", () => socket.send({
      type: "call_move", node: c.node, linkedid: c.linkedid, agent: agent.value.trim() }));
    for (const part of [adjust, set, agent, move]) box.appendChild(part);
    return box;
  }

  // With plain queues: app_queue's priority of a waiting caller (a whole number, higher first).
  function queuePriorityCell(c) {
    const box = el("span", null, "queue-priority");
    if (c.state !== "queued" && c.state !== "offered") return box;
    const priority = el("input");
    priority.type = "number"; priority.min = "0"; priority.max = "1000"; priority.step = "1";
    priority.value = "0"; priority.className = "priority";
    priority.setAttribute("aria-label", "Queue priority");
    const set = el("button", "set priority", "set-priority");
    set.addEventListener("click", () => socket.send({
      type: "call_priority", node: c.node, linkedid: c.linkedid, priority: Number(priority.value) }));
    box.appendChild(priority);
    box.appendChild(set);
    return box;
  }

  function percent(x) { return Math.round(x * 100) + " %"; }

  function drawCalls(m) {
    const calls = byId("calls").tBodies[0];
    clear(calls);
    for (const c of m.calls) {
      const caller = [c.caller_name, c.caller_number].filter(Boolean).join(" · ");
      const key = JSON.stringify([c.node, c.linkedid]);
      const words = el("button", expanded.has(key) ? "hide" : "show", "words");
      words.addEventListener("click", () => toggle(c));
      // the queue the customer called; a routed call's agent-of-their-own queue is the offer
      const state = c.offered_to && c.state === "queued" ? "offered to " + c.offered_to : c.state;
      const cells = [caller, c.tier, state, c.service_queue || c.queue, c.agent_label || c.agent, since(c.since), words];
      cells.push(m.routing ? routingCell(c) : queuePriorityCell(c));
      const tr = row(cells);
      tr.dataset.linkedid = c.linkedid;
      tr.dataset.state = c.state;
      calls.appendChild(tr);
      if (expanded.has(key)) calls.appendChild(transcriptRow(c));
    }
  }

  // The plan beside now: per queue, this interval and the next (forecast by the server).
  function drawStaffing(m) {
    const table = byId("staffing-live");
    if (!table) return;
    const body = table.tBodies[0];
    clear(body);
    if (!(m.staffing || []).length) {
      const td = el("td", "No forecast yet: it is learnt from the last four weeks of the CRM's calls.", "muted");
      td.colSpan = 6;
      body.appendChild(document.createElement("tr")).appendChild(td);
    }
    for (const q of m.staffing || []) {
      for (const i of q.intervals) {
        const soFar = i.offered === null ? "" : i.offered + (q.counted_since ? " (since " + q.counted_since + ")" : "");
        const tr = row([q.queue, i.when + " " + i.start, i.forecast, soFar, i.needed + " (" + q.target + ")", i.on_phones]);
        tr.dataset.queue = q.queue;
        tr.dataset.when = i.when;
        if (i.short) tr.classList.add("short");
        body.appendChild(tr);
      }
    }
  }

  function draw() {
    const m = latest;
    drawStaffing(m);
    const queues = byId("queues").tBodies[0];
    clear(queues);
    for (const q of m.queues) {
      const tr = row([q.queue, q.waiting, q.longest_wait + " s", percent(q.service_level),
        percent(q.abandon_rate) + " (" + q.abandoned + ")", q.asa + " s", q.aht + " s", q.answered]);
      tr.dataset.queue = q.queue;
      queues.appendChild(tr);
    }
    const alerts = byId("alerts");
    clear(alerts);
    for (const a of m.alerts) {
      const li = el("li", alertText(a), "alert " + a.kind);
      li.dataset.kind = a.kind;
      li.dataset.linkedid = a.linkedid;
      alerts.appendChild(li);
    }
    if (!m.alerts.length) alerts.appendChild(el("li", "none", "muted"));

    // A supervisor typing a priority or an extension: leave those rows alone until done.
    const typing = document.activeElement && document.activeElement.tagName === "INPUT" &&
      byId("calls").contains(document.activeElement);
    if (!typing) drawCalls(m);

    const agents = byId("agents").tBodies[0];
    clear(agents);
    for (const a of m.agents) {
      const actions = el("span");
      for (const mode of ["listen", "whisper", "barge"]) {
        const b = el("button", mode);
        b.addEventListener("click", () => socket.send({ type: "spy", mode, node: a.node, interface: a.interface }));
        actions.appendChild(b);
      }
      const pause = el("button", "pause");
      pause.addEventListener("click", () => socket.send({ type: "force_pause", node: a.node, interface: a.interface }));
      const out = el("button", "log out");
      out.addEventListener("click", () => socket.send({ type: "force_logout", node: a.node, interface: a.interface }));
      actions.appendChild(pause);
      actions.appendChild(out);
      // the person first, their phone after; a phone nobody in the CRM has, as Asterisk names it
      const who = el("span", a.name ? a.name + " (" + (a.extension || a.agent) + ")" : a.agent);
      // several poor calls today on their browser phone: said under the name
      if (a.audio) { who.appendChild(el("br")); who.appendChild(el("span", a.audio, "audio poor")); }
      const tr = row([who, a.state.replace("_", " ") + (a.reason ? " (" + a.reason + ")" : ""),
        since(a.since), a.caller, a.tier, actions]);
      tr.dataset.agent = a.agent;
      tr.dataset.state = a.state;
      agents.appendChild(tr);
    }
  }

  setInterval(() => { if (latest) draw(); }, 1000);
  // "Agents today" is rendered (and escaped) by the server: the fresh table replaces the old one.
  async function refreshAgentsToday() {
    const answer = await fetch("/ui/wallboard/agents-today", { credentials: "same-origin" });
    if (!answer.ok) return;
    const fresh = new DOMParser().parseFromString(await answer.text(), "text/html")
      .getElementById("agents-today");
    const shown = byId("agents-today");
    if (fresh && shown) shown.replaceWith(document.adoptNode(fresh));
  }

  setInterval(() => {
    for (const id of ["chart-calls", "chart-sl"]) {
      const img = byId(id);
      img.src = img.src.split("?")[0] + "?t=" + Date.now();
    }
    refreshAgentsToday().catch(() => {});
  }, 60000);
})();
