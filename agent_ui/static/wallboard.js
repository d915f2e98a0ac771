// The supervisor's wallboard: live figures pushed over the socket, drawn as text only.
"use strict";

(() => {
  const { byId, setText, el, clear, row, since } = cti;
  let latest = null;
  const socket = cti.connect("wallboard", onMessage, (status) => setText("board-status", status));

  function onMessage(m) {
    if (m.type === "wallboard") { latest = m; draw(); }
    else if (m.type === "info") setText("message", m.message);
    else if (m.type === "error") setText("message", m.message);
  }

  function percent(x) { return Math.round(x * 100) + " %"; }

  function draw() {
    const m = latest;
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
    for (const a of m.alerts) alerts.appendChild(el("li", "Long wait in " + a.queue + ": " + a.seconds + " s", "alert"));
    if (!m.alerts.length) alerts.appendChild(el("li", "none", "muted"));

    const calls = byId("calls").tBodies[0];
    clear(calls);
    for (const c of m.calls) {
      const caller = [c.caller_name, c.caller_number].filter(Boolean).join(" · ");
      const tr = row([caller, c.tier, c.state, c.queue, c.agent, since(c.since)]);
      tr.dataset.linkedid = c.linkedid;
      tr.dataset.state = c.state;
      calls.appendChild(tr);
    }

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
      const tr = row([a.agent, a.state.replace("_", " ") + (a.reason ? " (" + a.reason + ")" : ""),
        since(a.since), a.caller, a.tier, actions]);
      tr.dataset.agent = a.agent;
      tr.dataset.state = a.state;
      agents.appendChild(tr);
    }
  }

  setInterval(() => { if (latest) draw(); }, 1000);
  setInterval(() => {
    for (const id of ["chart-calls", "chart-sl"]) {
      const img = byId(id);
      img.src = img.src.split("?")[0] + "?t=" + Date.now();
    }
  }, 60000);
})();
