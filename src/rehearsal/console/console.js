// The command-centre console: keeps the page's live regions current from the server's event
// stream and sends the forms without leaving the page. Everything comes from the console
// itself (this file, its style, the stream); the page makes no other request.
"use strict";
(() => {
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const who = document.getElementById("who");
  const status = document.getElementById("status");
  const offline = document.getElementById("offline");
  const shown = {};
  const KEY = "rehearsal-console-who";

  try { who.value = who.value || localStorage.getItem(KEY) || ""; } catch (e) { /* no storage */ }
  who.addEventListener("change", () => { try { localStorage.setItem(KEY, who.value); } catch (e) { /* */ } });

  function say(text, ok) {
    status.textContent = text;
    status.className = ok ? "ok" : "error";
  }

  function apply(regions) {
    for (const [id, html] of Object.entries(regions)) {
      if (shown[id] === html) continue;
      const region = document.getElementById(id);
      if (!region) continue;
      region.innerHTML = html; // rendered by the server's autoescaping templates
      shown[id] = html;
    }
  }

  function follow() {
    const source = new EventSource("events");
    source.addEventListener("live", (e) => {
      const data = JSON.parse(e.data);
      apply(data.regions);
      document.body.dataset.version = String(data.version);
      offline.hidden = true;
    });
    source.addEventListener("error", () => { offline.hidden = false; }); // it reconnects by itself
  }

  document.addEventListener("submit", async (e) => {
    const form = e.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains("act")) return;
    e.preventDefault();
    if (!who.value.trim()) {
      say(who.dataset.missing, false);
      who.focus();
      return;
    }
    const body = new URLSearchParams(new FormData(form));
    if (e.submitter && e.submitter.name) body.set(e.submitter.name, e.submitter.value);
    body.set("by", who.value.trim());
    body.set("csrf", csrf);
    try {
      const reply = await fetch(form.getAttribute("action"), {
        method: "POST",
        body,
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      const said = await reply.json().catch(() => ({ message: reply.statusText }));
      say(said.message, reply.ok);
      if (reply.ok && form.dataset.reset !== undefined) form.reset();
    } catch (err) {
      say(String(err), false);
    }
  });

  document.addEventListener("click", (e) => {
    const button = e.target instanceof Element ? e.target.closest("[data-attest-item]") : null;
    if (!button) return;
    const form = document.getElementById("attest-form");
    form.elements.namedItem("item").value = button.dataset.attestItem; // (elements.item is a method)
    form.elements.namedItem("site").value = button.dataset.attestSite;
    form.elements.namedItem("note").focus();
  });

  follow();
})();
