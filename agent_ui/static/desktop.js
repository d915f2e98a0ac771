// The agent desktop: state, the screen pop, call controls, wrap-up. Text only, never markup.
"use strict";

(() => {
  const { byId, setText, el, clear, row, since } = cti;
  let stateSince = null, pop = null, wrapup = null, wrapupEnds = 0;

  const socket = cti.connect("desk", onMessage, (status) => {
    if (status === "offline") setText("state", "offline");
  });

  const deskPhone = phoneAtDesk(byId("phone"));

  function say(text, isError) {
    setText("message", text);
    byId("message").className = isError ? "error" : "muted";
  }

  function onMessage(m) {
    switch (m.type) {
      case "hello": break;
      case "phone": deskPhone.configure(m); break;
      case "state": showState(m); break;
      case "pop": if (m.agent_state) showState(m.agent_state); showPop(m); deskPhone.popped(m); break;  // a ring's state comes in its pop
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
  // with a phone in the page, its call is hung up and held by the phone itself (SIP)
  byId("hangup").addEventListener("click", () => { if (!deskPhone.hangup()) socket.send({ type: "hangup" }); });
  byId("hold").addEventListener("click", () => { if (!deskPhone.hold(true)) socket.send({ type: "hold" }); });
  byId("unhold").addEventListener("click", () => { if (!deskPhone.hold(false)) socket.send({ type: "unhold" }); });
  byId("transfer").addEventListener("click", () => socket.send({ type: "transfer", to: byId("transfer-to").value, note: byId("transfer-note").value }));
  const toQueue = byId("transfer-to-queue");  // absent when no queue is configured
  if (toQueue) toQueue.addEventListener("click", () => socket.send({ type: "transfer_queue", queue: byId("transfer-queue").value, note: byId("transfer-note").value }));
  byId("dial").addEventListener("click", () => socket.send({ type: "dial", number: byId("dial-number").value }));
  byId("wrapup-done").addEventListener("click", () => sendWrapup(false));
  // The browser phone (static/phone.js), when the agent's phone is the browser: the page has
  // #phone with where to register; the socket's greeting brings the secret's HA1. It rings with
  // the pop, and reports what it measured of each call as `call_quality` on the desk socket.
  function phoneAtDesk(panel) {
    const none = { configure() {}, popped() {}, hangup: () => false, hold: () => false };
    if (!panel || typeof ctiPhone === "undefined") return none;
    const QUALITY_EVERY_MS = 60000, SAMPLE_MS = 1000;
    let phone = null, ha1 = null, call = null, sampler = null;
    const answer = byId("phone-answer"), mute = byId("phone-mute"), ringer = ringTone();

    function showProblem(text) {
      setText("phone-problem", text || "");
      byId("phone-problem").hidden = !text;
    }

    function showCall(state, text) {
      if (state === "ringing") ringer.start(); else ringer.stop();
      byId("phone-call").dataset.call = state;
      setText("phone-call", text);
      answer.disabled = state !== "ringing";
      mute.disabled = state !== "connected" && state !== "held";
    }

    function configure(m) {
      if (m.problem) { showProblem(m.problem); shownState("unavailable", ""); return; }
      if (phone && ha1 === m.ha1) return;  // the socket came back: the phone is the same
      if (phone) phone.stop();
      ha1 = m.ha1;
      const d = panel.dataset;
      phone = ctiPhone.create(
        { server: d.server, uri: d.uri, user: d.user, realm: d.realm, ha1, audio: byId("phone-audio") },
        { state: shownState, microphone, ringing, call: callEvent });
      phone.start();
    }

    function shownState(state, reason) {
      setText("phone-state", state);
      byId("phone-state").dataset.state = state;
      setText("phone-reason", reason);
    }

    // no microphone: said on the desk, and told to the server, which pauses the agent (no call
    // is offered) and refuses "available" until the phone reports it works
    function microphone(ok, problem, message) {
      showProblem(ok ? "" : message);
      socket.send(ok ? { type: "phone", working: true } : { type: "phone", working: false, problem });
    }

    function ringing(c) {
      call = { from: [c.name, c.from].filter(Boolean).join(" · "), linkedid: pop ? pop.call.linkedid : null,
        connectedAt: 0, samples: [], sentAt: 0, last: null };
      showCall("ringing", "Ringing: " + (call.from || "a caller"));
    }

    function popped(m) { if (call && !call.linkedid) call.linkedid = m.call.linkedid; }

    function callEvent(event) {
      if (!call && event !== "ended") return;
      switch (event) {
        case "answering": showCall("answering", "Answering…"); break;
        case "connected":
          call.connectedAt = call.sentAt = Date.now();
          showCall("connected", "On a call with " + (call.from || "a caller"));
          sampler = setInterval(sample, SAMPLE_MS);
          break;
        case "held": showCall("held", "Caller on hold"); break;
        case "resumed": showCall("connected", "On a call with " + call.from); break;
        case "muted": mute.setAttribute("aria-pressed", "true"); setText("phone-mute", "Unmute"); break;
        case "unmuted": mute.setAttribute("aria-pressed", "false"); setText("phone-mute", "Mute"); break;
        case "ended":
          clearInterval(sampler);
          if (call && call.connectedAt) sendQuality(true);
          call = null;
          mute.setAttribute("aria-pressed", "false");
          setText("phone-mute", "Mute");
          byId("phone-quality").hidden = true;
          showCall("idle", "No call.");
          break;
      }
    }

    async function sample() {
      const s = call && await phone.stats();
      if (!s || !call) return;
      call.samples.push(s);
      call.last = s;
      const q = byId("phone-quality");
      q.hidden = false;
      q.dataset.packetsReceived = s.packetsReceived ?? 0;
      q.dataset.levelIn = s.audioLevel ?? 0;
      q.dataset.levelOut = s.audioLevelOut ?? 0;
      setText("phone-quality", "heard " + level(s.audioLevel) + " · sent " + level(s.audioLevelOut) +
        " · jitter " + (s.jitter == null ? "–" : Math.round(s.jitter * 1000) + " ms") +
        " · lost " + (s.packetsLost ?? 0) + " packets");
      if (Date.now() - call.sentAt >= QUALITY_EVERY_MS) sendQuality(false);
    }

    function level(value) { return value == null ? "–" : Math.round(value * 100) + "%"; }

    function mean(values) {
      const known = values.filter((v) => typeof v === "number" && isFinite(v));
      return known.length ? known.reduce((a, b) => a + b, 0) / known.length : null;
    }

    // the call-quality contract of the desk socket (stored on the interaction by the server)
    function sendQuality(final) {
      if (!call.linkedid) return;  // no pop: a call the CTI did not see
      call.sentAt = Date.now();
      const samples = call.samples, last = call.last || {};
      const received = last.packetsReceived ?? 0, lost = Math.max(0, last.packetsLost ?? 0);
      const scaled = (key, factor) => { const m = mean(samples.map((s) => s[key])); return m == null ? null : m * factor; };
      socket.send({
        type: "call_quality",
        linkedid: call.linkedid,
        seconds: (Date.now() - call.connectedAt) / 1000,
        final,
        jitter_ms: scaled("jitter", 1000),
        packet_loss_pct: received + lost ? lost / (received + lost) * 100 : null,
        rtt_ms: scaled("roundTripTime", 1000),
        audio_level_in: scaled("audioLevel", 1),
        audio_level_out: scaled("audioLevelOut", 1),
        packets_received: received,
        packets_lost: lost,
      });
    }

    answer.addEventListener("click", () => { if (phone) phone.answer(); });
    mute.addEventListener("click", () => {
      if (!phone || !phone.inCall) return;
      if (mute.getAttribute("aria-pressed") === "true") phone.unmute(); else phone.mute();
    });
    for (const key of panel.querySelectorAll(".keypad button")) {
      key.addEventListener("click", () => { if (phone) phone.dtmf(key.dataset.tone); });
    }
    showCall("idle", "No call.");

    return {
      configure, popped,
      hangup: () => Boolean(phone && phone.inCall && (phone.hangup(), true)),
      hold: (on) => Boolean(phone && phone.inCall && (on ? phone.hold() : phone.unhold())),
    };
  }
  // A ring the agent hears with the desk in a background tab, and says in the tab's title: two
  // tones (440 + 480 Hz, 2 s on, 4 s off) made by the page, no sound file. Browsers let a page
  // play sound once someone clicked in it (signing in, going available).
  function ringTone() {
    const ON = 2, OFF = 4, title = document.title;
    let context = null, timer = null, playing = [];
    const Context = window.AudioContext || window.webkitAudioContext;
    document.addEventListener("click", () => { if (!context && Context) context = new Context(); });

    function burst() {
      if (!context) return;
      if (context.state === "suspended") context.resume();
      const gain = context.createGain();
      gain.gain.value = 0.08;
      gain.connect(context.destination);
      const at = context.currentTime;
      playing = [440, 480].map((hz) => {
        const tone = context.createOscillator();
        tone.frequency.value = hz;
        tone.connect(gain);
        tone.start(at);
        tone.stop(at + ON);
        return tone;
      });
    }

    return {
      start() {
        if (timer) return;
        document.title = "Ringing · " + title;
        burst();
        timer = setInterval(burst, (ON + OFF) * 1000);
      },
      stop() {
        if (!timer) return;
        clearInterval(timer);
        timer = null;
        document.title = title;
        for (const tone of playing) { try { tone.stop(); } catch (e) { /* ended already */ } }
        playing = [];
      },
    };
  }
})();
