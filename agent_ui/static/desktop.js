// The agent desktop: state, the screen pop, call controls, wrap-up. Text only, never markup.
"use strict";

(() => {
  const { byId, setText, el, clear, row, since } = cti;
  let stateSince = null, pop = null, wrapup = null, wrapupEnds = 0;

  const socket = cti.connect("desk", onMessage, (status) => {
    if (status === "offline") setText("state", "offline");
  });

  function say(text, isError) {
    setText("message", text);
    byId("message").className = isError ? "error" : "muted";
  }

  function onMessage(m) {
    switch (m.type) {
      case "hello": break;
      case "state": showState(m); break;
      case "pop": showPop(m); break;
      case "pop_routing": if (pop && pop.call.linkedid === m.linkedid) showRouting(Object.assign({}, pop.routing, m.routing)); break;
      case "answered": setText("pop-call-state", "connected"); break;
      case "pop_cleared": if (pop && pop.call.linkedid === m.linkedid) hidePop(); break;
      case "handed_over": leftCall(m); break;
      case "wrapup": showWrapup(m); break;
      case "wrapped":
        wrapup = null; byId("wrapup").hidden = true; hidePop();
        say(m.timed_out ? "Wrap-up time is over: the call was stored as it stood." : "Wrap-up saved.");
        break;
      case "held": say(m.held ? "Caller on hold." : "Caller back."); break;
      case "info": say(m.message); break;
      case "error": say(m.message, true); break;
    }
  }

  function showState(m) {
    setText("state", m.state.replace("_", " "));
    byId("state").dataset.state = m.state;
    setText("state-reason", m.state === "paused" ? m.reason : "");
    stateSince = Date.now();
  }

  function hidePop() {
    pop = null;
    byId("pop").hidden = true;
    byId("pop-empty").hidden = false;
    byId("handover").hidden = true;
    byId("transfer-note").value = "";  // a note belongs to one call's transfer
  }

  // the customer went to another party: said on the pop (its wrap-up follows), or, for a call
  // that only rang here (a pickup), the pop closes
  function leftCall(m) {
    if (!pop || pop.call.linkedid !== m.linkedid) return;
    if (m.closed) {
      hidePop();
      say(m.to + " has the call (" + m.how + ").");
      return;
    }
    setText("pop-left", m.to + " · " + m.how);
    byId("pop-left").dataset.to = m.to;
    byId("pop-left").hidden = byId("pop-left-label").hidden = false;
  }

  // who handed the customer over, how, why, and what was said so far (all text, never markup)
  function showHandover(m) {
    const panel = byId("handover");
    const h = m.handover;
    panel.hidden = !h;
    if (!h) { delete panel.dataset.linkedid; delete panel.dataset.kind; return; }
    panel.dataset.linkedid = m.call.linkedid;
    panel.dataset.kind = h.kind;
    setText("handover-lead", h.lead || "Handed over by");
    setText("handover-from", h.from.label);
    setText("handover-how", h.how);
    setText("handover-note", h.note);
    byId("handover-note-line").hidden = !h.note;
    const lines = byId("handover-transcript");
    clear(lines);
    for (const line of h.transcript || []) {
      const li = el("li");
      li.dataset.speaker = line.speaker;
      li.appendChild(el("span", line.speaker + ": ", "speaker"));
      li.appendChild(el("span", line.text, "said"));
      lines.appendChild(li);
    }
    if (!(h.transcript || []).length) lines.appendChild(el("li", "no transcript of this call", "muted"));
    const facts = byId("handover-complaints");
    clear(facts);
    for (const c of h.complaints || []) {
      const said = (c.said || []).map((words) => "“" + words + "”").join(" ");
      facts.appendChild(el("li", c.category + " · " + c.severity + " · " + Math.round(c.probability * 100) + "%" + (said ? " · " + said : "")));
    }
    if (h.handling) {
      facts.appendChild(el("li", "on hold " + h.handling.hold_seconds + " s · passed on " + h.handling.transfers + " times · back " + h.handling.returns + " times"));
    }
    if (!facts.firstChild) facts.appendChild(el("li", "none detected", "muted"));
  }

  function showPop(m) {
    pop = m;
    if (wrapup && wrapup.linkedid === m.call.linkedid && m.call.state === "connected") {
      wrapup = null;  // the customer came back to this desk: the wrap-up waits for the end
      byId("wrapup").hidden = true;
    }
    byId("pop").hidden = false;
    byId("pop-empty").hidden = true;
    const c = m.customer;
    const call = m.call;
    setText("pop-name", c ? c.name : (call.caller_name || "Unknown caller"));
    setText("pop-tier", c ? c.tier : "unknown");
    byId("pop-tier").dataset.tier = c ? c.tier : "";
    setText("pop-call-state", call.state || "ringing");
    setText("pop-phone", c ? c.phones.join(", ") : (m.number || call.caller_number));
    setText("pop-caller", [call.caller_name, call.caller_number].filter(Boolean).join(" · "));
    const identity = m.identity || { verified: false, note: "not verified" };
    setText("pop-identity", identity.note);
    byId("pop-identity").className = identity.verified ? "verified" : "unverified";
    setText("pop-account", c ? c.account_number : "");
    setText("pop-organisation", c ? c.organisation : "");
    setText("pop-language", c ? c.language : "");
    setText("pop-value", c ? "lifetime " + c.value.lifetime_value + " · R" + c.value.recency +
      " F" + c.value.frequency + " M" + c.value.monetary : "");
    setText("pop-queue", call.queue);
    setText("pop-transferred", call.transferred_by || "");
    byId("pop-transferred").hidden = byId("pop-transferred-label").hidden = !call.transferred_by;
    byId("pop-left").hidden = byId("pop-left-label").hidden = true;
    delete byId("pop-left").dataset.to;
    showHandover(m);
    byId("pop-profile").hidden = !c;
    if (c) byId("pop-profile").href = "/ui/customers/" + encodeURIComponent(c.id);

    byId("pop-unknown").hidden = m.lookup !== "unknown" || !!c;
    byId("create-linkedid").value = call.linkedid;
    byId("create-phone").value = m.number || call.caller_number || "";
    byId("create-name").value = call.caller_name || "";

    const matches = byId("pop-match-list");
    clear(matches);
    byId("pop-matches").hidden = !(m.matches && m.matches.length > 1) || !!c;
    for (const match of m.matches || []) {
      const li = el("li");
      const button = el("button", match.name + " (" + match.tier + ")");
      button.addEventListener("click", () => socket.send({ type: "choose", customer_id: match.id }));
      li.appendChild(button);
      matches.appendChild(li);
    }

    const path = byId("pop-ivr-path");
    clear(path);
    const inputs = byId("pop-ivr-inputs");
    clear(inputs);
    if (m.ivr) {
      for (const step of m.ivr.path) {
        path.appendChild(el("li", step.step + (step.input ? " → " + step.input : "")));
      }
      for (const [key, value] of Object.entries(m.ivr.inputs)) {
        inputs.appendChild(el("dt", key));
        const dd = el("dd", value);
        dd.dataset.input = key;
        inputs.appendChild(dd);
      }
    } else {
      path.appendChild(el("li", "did not pass the IVR", "muted"));
    }
    showRouting(m.routing || {});

    const history = byId("pop-history");
    clear(history);
    for (const i of m.interactions || []) {
      history.appendChild(row([i.at.slice(0, 16).replace("T", " "), i.kind, i.queue, i.agent, i.outcome]));
    }
    const cases = byId("pop-cases");
    clear(cases);
    for (const k of m.cases || []) {
      cases.appendChild(el("li", "#" + k.id + " " + k.category + " · " + k.severity + " · " + k.status + " · " + k.summary));
    }
    if (!(m.cases || []).length) cases.appendChild(el("li", "none", "muted"));
  }

  function showRouting(routing) {
    const list = byId("pop-routing");
    clear(list);
    for (const [key, value] of Object.entries(routing)) {
      list.appendChild(el("dt", key));
      list.appendChild(el("dd", typeof value === "string" ? value : JSON.stringify(value)));
    }
  }

  function showWrapup(m) {
    wrapup = m;
    // the server keeps the deadline and stores the wrap-up when it passes: count down to it
    wrapupEnds = Date.now() + (m.left != null ? m.left : m.seconds) * 1000;
    byId("wrapup").hidden = false;
    setText("pop-call-state", "ended");
  }

  setInterval(() => {
    if (stateSince) setText("state-timer", since(new Date(stateSince).toISOString()));
    if (wrapup) {
      const left = Math.max(0, Math.round((wrapupEnds - Date.now()) / 1000));
      setText("wrapup-timer", left + " s");
      if (left === 0) { sendWrapup(true); }
    }
  }, 1000);

  function sendWrapup(timedOut) {
    if (!wrapup) return;
    const disposition = byId("disposition").value || (timedOut ? "no_action" : "");
    if (!disposition) { say("Choose a disposition.", true); return; }
    const at = byId("follow-up-at").value;
    socket.send({
      type: "wrapup",
      linkedid: wrapup.linkedid,
      disposition,
      notes: byId("notes").value,
      follow_up_at: at ? new Date(at).toISOString() : "",
      follow_up_note: byId("follow-up-note").value,
    });
    if (timedOut) wrapup = null;
  }

  for (const id of ["go-available", "go-paused", "go-logged-out"]) {
    byId(id).addEventListener("click", (event) => {
      socket.send({ type: "state", state: event.target.dataset.state, reason: byId("pause-reason").value });
    });
  }
  byId("hangup").addEventListener("click", () => socket.send({ type: "hangup" }));
  byId("hold").addEventListener("click", () => socket.send({ type: "hold" }));
  byId("unhold").addEventListener("click", () => socket.send({ type: "unhold" }));
  byId("transfer").addEventListener("click", () => socket.send({ type: "transfer", to: byId("transfer-to").value, note: byId("transfer-note").value }));
  const toQueue = byId("transfer-to-queue");  // absent when no queue is configured
  if (toQueue) toQueue.addEventListener("click", () => socket.send({ type: "transfer_queue", queue: byId("transfer-queue").value, note: byId("transfer-note").value }));
  byId("dial").addEventListener("click", () => socket.send({ type: "dial", number: byId("dial-number").value }));
  byId("wrapup-done").addEventListener("click", () => sendWrapup(false));
})();
