// The agent's browser phone: one JsSIP user agent registered over WSS, one call at a time.
// It loads after /ui/static/vendor/jssip.min.js (bundled by scripts/bootstrap, served by us, never
// a CDN). The page gives the server, the agent's SIP user and the HA1 form of its secret (never
// the password), and callbacks; it touches no DOM but the <audio> element the caller is heard in.
//
//   const phone = ctiPhone.create({server: "wss://host:8089/ws", uri: "sip:8101@host",
//     user: "8101", ha1: "…", realm: "asterisk", audio: audioElement}, {
//     state(state, reason) {},      // unavailable | unregistered | registering | registered | failed
//     microphone(ok, problem, message) {},  // problem: refused | missing | busy | insecure | failed
//     ringing(call) {},             // {from, name, callId}
//     call(event, detail) {},       // answering | connected | held | resumed | muted | unmuted | ended
//   });
//   phone.start();
"use strict";

const ctiPhone = (() => {
  // capture as it is: noise suppression and gain control squash a steady voice or test tone
  const MICROPHONE = { audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false }, video: false };
  const RECONNECT = { connection_recovery_min_interval: 1, connection_recovery_max_interval: 8 };
  const REREGISTER_MS = 8000;  // after a refused REGISTER that a retry can cure (a busy server)
  // a REGISTER unanswered this long is lost (a server still starting took the socket but not the
  // request); over a websocket nothing resends it, and JsSIP would wait 32 s for its timeout
  const REGISTER_WAIT_MS = 5000;
  const DTMF = /^[0-9A-D#*,]+$/;
  const MICROPHONE_PROBLEMS = {
    NotAllowedError: ["refused", "Microphone refused: allow this site to use the microphone, then try again."],
    SecurityError: ["refused", "Microphone refused: allow this site to use the microphone, then try again."],
    NotFoundError: ["missing", "No microphone found: plug one in."],
    OverconstrainedError: ["missing", "No microphone found: plug one in."],
    NotReadableError: ["busy", "The microphone is in use by another program or does not work."],
  };

  function available() { return typeof JsSIP !== "undefined" && typeof JsSIP.UA === "function"; }

  function microphoneProblem(error) {
    const known = MICROPHONE_PROBLEMS[error && error.name];
    if (known) return known;
    return ["failed", "The microphone could not be opened" + (error && error.name ? " (" + error.name + ")." : ".")];
  }

  async function openMicrophone() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      const error = new Error("This page is not served over https: the browser gives it no microphone.");
      error.problem = "insecure";
      throw error;
    }
    try {
      return await navigator.mediaDevices.getUserMedia(MICROPHONE);
    } catch (cause) {
      const [problem, message] = microphoneProblem(cause);
      const error = new Error(message);
      error.problem = problem;
      throw error;
    }
  }

  function stopTracks(stream) {
    if (stream) for (const track of stream.getTracks()) track.stop();
  }

  function create(options, handlers) {
    const on = Object.assign({ state() {}, microphone() {}, ringing() {}, call() {} }, handlers);
    const audio = options.audio || new Audio();
    audio.autoplay = true;
    let ua = null, session = null, localStream = null, retry = null, starting = null, unanswered = null;
    let wanted = false, microphoneOk = false, shown = { state: null, reason: null };
    const NO_MICROPHONE = "No working microphone: no calls until it works.";
    const NO_CONNECTION = "No connection to the phone server: retrying.";

    function report(state, reason) {
      reason = reason || "";
      if (shown.state === state && shown.reason === reason) return;
      shown = { state, reason };
      on.state(state, reason);
    }

    // the agent is offered no call while the microphone does not work: no registration until then
    async function checkMicrophone() {
      try {
        stopTracks(await openMicrophone());
        microphoneOk = true;
        on.microphone(true, "", "");
      } catch (error) {
        withoutMicrophone(error);
      }
      return microphoneOk;
    }

    function withoutMicrophone(error) {
      microphoneOk = false;
      on.microphone(false, error.problem, error.message);
      if (ua && ua.isRegistered()) ua.unregister();
      report("unregistered", NO_MICROPHONE);
    }

    // registers once the microphone works; again after stop(); twice at once is once
    function start() {
      wanted = true;
      if (!starting) starting = register().finally(() => { starting = null; });
      return starting;
    }

    async function register() {
      if (!available()) {
        report("unavailable", "The browser phone is not installed on this server (scripts/bootstrap bundles it).");
        return;
      }
      if (!(await checkMicrophone())) return;
      if (ua) { if (!ua.isRegistered()) ua.register(); return; }
      ua = new JsSIP.UA(Object.assign({
        sockets: [new JsSIP.WebSocketInterface(options.server)],
        uri: options.uri,
        authorization_user: options.user,
        ha1: options.ha1,
        realm: options.realm,
        display_name: options.displayName || undefined,
        register: true,
        user_agent: "CTI desk phone (JsSIP " + JsSIP.version + ")",
      }, RECONNECT));
      ua.on("connected", () => { report("registering"); awaitRegistration(); });
      ua.on("disconnected", () => report("failed", NO_CONNECTION));
      ua.on("registered", () => { clearTimeout(unanswered); report("registered"); });
      ua.on("unregistered", () => {
        if (!ua) return;  // stopped
        if (!ua.isConnected()) report("failed", NO_CONNECTION);
        else report("unregistered", microphoneOk ? "" : NO_MICROPHONE);
      });
      ua.on("registrationFailed", (e) => registrationFailed(e.cause, e.response));
      ua.on("newRTCSession", (e) => { if (e.originator === "remote") incoming(e.session, e.request); });
      report("registering");
      ua.start();
    }

    // no answer to the REGISTER: a fresh user agent (a new connection) sends it again
    function awaitRegistration() {
      clearTimeout(unanswered);
      unanswered = setTimeout(() => {
        if (!ua || ua.isRegistered() || session || !wanted || !microphoneOk) return;
        const stale = ua;
        ua = null;
        stale.removeAllListeners();
        stale.stop();
        start();
      }, REGISTER_WAIT_MS);
    }

    function registrationFailed(cause, response) {
      clearTimeout(unanswered);
      const refused = cause === JsSIP.C.causes.AUTHENTICATION_ERROR || cause === JsSIP.C.causes.REJECTED;
      const code = response ? " (" + response.status_code + " " + response.reason_phrase + ")" : "";
      report("failed", refused ? "The phone server refused this agent's credentials" + code + "."
        : "Registration failed: " + cause + code + ".");
      clearTimeout(retry);
      // wrong credentials stay wrong; a lost connection re-registers when it comes back
      if (!refused && cause !== JsSIP.C.causes.CONNECTION_ERROR) {
        retry = setTimeout(() => { if (ua && ua.isConnected()) ua.register(); }, REREGISTER_MS);
      }
    }

    function incoming(newSession, request) {
      if (session) { newSession.terminate({ status_code: 486, reason_phrase: "Busy Here" }); return; }
      session = newSession;
      const identity = newSession.remote_identity;
      newSession.on("peerconnection", (e) => hear(e.peerconnection));
      newSession.on("confirmed", () => on.call("connected", {}));
      newSession.on("hold", (e) => { if (e.originator === "local") on.call("held", {}); });
      newSession.on("unhold", (e) => { if (e.originator === "local") on.call("resumed", {}); });
      newSession.on("muted", () => on.call("muted", {}));
      newSession.on("unmuted", () => on.call("unmuted", {}));
      newSession.on("ended", (e) => ended(newSession, e.cause));
      newSession.on("failed", (e) => ended(newSession, e.cause));
      on.ringing({
        from: identity.uri.user,
        name: identity.display_name || "",
        callId: request.call_id,
      });
    }

    function hear(peerconnection) {
      peerconnection.addEventListener("track", (e) => {
        if (e.track.kind !== "audio") return;
        audio.srcObject = e.streams[0] || new MediaStream([e.track]);
        // audioLevel in the statistics is 0 unless the caller's stream plays
        audio.play().catch(() => {});
      });
    }

    function ended(which, cause) {
      if (session !== which) return;
      session = null;
      stopTracks(localStream);
      localStream = null;
      audio.srcObject = null;
      on.call("ended", { cause: cause || "" });
    }

    async function answer() {
      const ringing = session;
      if (!ringing || !ringing.isInProgress()) return false;
      on.call("answering", {});
      let stream;
      try {
        stream = await openMicrophone();
      } catch (error) {
        withoutMicrophone(error);
        if (session === ringing) ringing.terminate({ status_code: 480, reason_phrase: "No Microphone" });
        return false;
      }
      if (session !== ringing || !ringing.isInProgress()) { stopTracks(stream); return false; }  // the caller hung up meanwhile
      localStream = stream;
      ringing.answer({ mediaStream: stream, pcConfig: { iceServers: options.iceServers || [] } });
      return true;
    }

    function hangup() { if (session) session.terminate(); }
    function hold() { return reoffer("hold"); }
    function unhold() { return reoffer("unhold"); }

    // Hold and unhold are re-INVITEs: JsSIP refuses one while the last is still unanswered, so an
    // agent who clicks Unhold right after Hold would see nothing happen. Such a click is kept and
    // sent once the last re-INVITE is answered (dropped if the call ends or 10 s pass).
    let inFlight = null, next = null;  // the session whose re-INVITE is unanswered; the click kept
    function reoffer(action) {
      const target = session, wanted = action === "hold";
      if (!target || !target.isEstablished()) return false;
      const willBeHeld = next && inFlight === target ? next === "hold" : target.isOnHold().local;
      if (willBeHeld === wanted) return false;
      if (inFlight !== target && target.isReadyToReOffer()) return send(target, action);
      next = action;
      later(target);
      return true;
    }
    function send(target, action) {
      inFlight = target;
      const sent = target[action]({}, () => { if (inFlight === target) inFlight = null; later(target); });
      if (!sent) inFlight = null;
      return sent;
    }
    function later(target) {
      const deadline = Date.now() + 10000;
      const attempt = () => {
        if (!next || inFlight === target) return;  // nothing kept, or the answer will call again
        if (session !== target || !target.isEstablished() || Date.now() > deadline) { next = null; return; }
        if (!target.isReadyToReOffer()) { setTimeout(attempt, 50); return; }
        const action = next;
        next = null;
        if (target.isOnHold().local !== (action === "hold")) send(target, action);
      };
      setTimeout(attempt, 0);
    }
    function mute() { if (session) session.mute({ audio: true }); }
    function unmute() { if (session) session.unmute({ audio: true }); }

    function dtmf(tones) {
      const digits = String(tones);
      if (!DTMF.test(digits)) throw new Error("DTMF takes 0-9, A-D, * and # only: " + digits);
      if (!session || !session.isEstablished()) return false;
      // in the media as RFC 2833 events: mixing in SIP INFO (JsSIP's default) reorders digits
      session.sendDTMF(digits, { transportType: "RFC2833" });
      return true;
    }

    // the call's quality as the browser measures it; null when there is no call
    async function stats() {
      const peerconnection = session && session.connection;
      if (!peerconnection) return null;
      const found = { jitter: null, packetsLost: null, roundTripTime: null, audioLevel: null, packetsReceived: null,
        audioLevelOut: null, packetsSent: null };
      let pairRoundTrip = null;
      (await peerconnection.getStats()).forEach((report) => {
        if (report.type === "inbound-rtp" && report.kind === "audio") {
          found.jitter = report.jitter ?? null;
          found.packetsLost = report.packetsLost ?? null;
          found.packetsReceived = report.packetsReceived ?? null;
          found.audioLevel = report.audioLevel ?? null;
        } else if (report.type === "media-source" && report.kind === "audio") {
          found.audioLevelOut = report.audioLevel ?? null;  // the microphone, as captured
        } else if (report.type === "outbound-rtp" && report.kind === "audio") {
          found.packetsSent = report.packetsSent ?? null;
        } else if (report.type === "remote-inbound-rtp" && report.kind === "audio") {
          found.roundTripTime = report.roundTripTime ?? found.roundTripTime;
        } else if (report.type === "candidate-pair" && report.nominated && report.state === "succeeded") {
          pairRoundTrip = report.currentRoundTripTime ?? pairRoundTrip;
        }
      });
      // Asterisk's RTCP gives the first round trip after a few seconds; ICE's own is there at once
      if (found.roundTripTime === null) found.roundTripTime = pairRoundTrip;
      return found;
    }

    function stop() {
      wanted = false;
      clearTimeout(retry);
      clearTimeout(unanswered);
      if (session) session.terminate();
      if (ua) ua.stop();
      ua = null;
      report("unregistered");
    }

    // a WebSocket the page's Content-Security-Policy blocks neither opens nor closes: JsSIP would
    // wait for ever without a word
    document.addEventListener("securitypolicyviolation", (e) => {
      if (wanted && e.blockedURI && e.blockedURI.indexOf(new URL(options.server).host) !== -1) {
        report("failed", "This page may not connect to the phone server " + options.server +
          ": its Content-Security-Policy (connect-src) does not allow it.");
      }
    });

    if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
      // a microphone plugged in after a failed check: try again by itself
      navigator.mediaDevices.addEventListener("devicechange", () => { if (wanted && !microphoneOk) start(); });
    }

    return { start, stop, checkMicrophone, answer, hangup, hold, unhold, mute, unmute, dtmf, stats,
      get state() { return shown.state; }, get inCall() { return session !== null; } };
  }

  return { available, create, version: () => (available() ? JsSIP.version : null) };
})();
