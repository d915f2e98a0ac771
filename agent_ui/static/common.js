// Shared by the desktop and the wallboard: one websocket per page, text-only DOM helpers.
// Data from the server is caller-supplied and hostile: it only ever goes into textContent.
"use strict";

const cti = (() => {
  function byId(id) { return document.getElementById(id); }

  function setText(id, text) {
    const node = byId(id);
    if (node) node.textContent = text == null ? "" : String(text);
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text != null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      if (cell instanceof Node) { const td = el("td"); td.appendChild(cell); tr.appendChild(td); }
      else tr.appendChild(el("td", cell));
    }
    return tr;
  }

  function since(iso) {
    if (!iso) return "";
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    const m = Math.floor(seconds / 60), s = seconds % 60;
    return m + ":" + String(s).padStart(2, "0");
  }

  // The socket: reconnects after a drop, goes to the sign-in page when the session ended.
  function connect(view, onMessage, onStatus) {
    let socket = null, delay = 500, lastActivity = 0;
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
      "/ui/ws?view=" + encodeURIComponent(view);
    function open() {
      socket = new WebSocket(url);
      socket.addEventListener("open", () => { delay = 500; if (onStatus) onStatus("live"); });
      socket.addEventListener("message", (event) => {
        let message;
        try { message = JSON.parse(event.data); } catch (e) { return; }
        onMessage(message);
      });
      socket.addEventListener("close", (event) => {
        if (onStatus) onStatus("offline");
        if (event.code === 4401) {
          location.assign("/ui/login");
          return;
        }
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 10000);
      });
    }
    function send(message) {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
    }
    for (const kind of ["keydown", "mousedown"]) {
      document.addEventListener(kind, () => {
        if (Date.now() - lastActivity > 60000) { lastActivity = Date.now(); send({ type: "activity" }); }
      });
    }
    open();
    return { send };
  }

  return { byId, setText, el, clear, row, since, connect };
})();
