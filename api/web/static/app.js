// elevate's only script: local times, live status, and the request form's hints.
// No build step; pages work without it (times stay UTC, a reload shows new statuses).
"use strict";

const TERMINAL = ["ended", "revoked", "rejected", "cancelled", "expired", "failed"];

function localTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (isNaN(at)) continue;
    el.textContent = at.toLocaleString(undefined, {dateStyle: "medium", timeStyle: "short"});
    el.title = at.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }
}

function statusOf(root) {
  const word = root.querySelector("[data-status-word]");
  return word ? word.textContent.trim() : null;
}

// Swap the actions once the status changed, unless the person is typing in them.
async function refreshActions(pageUrl) {
  const area = document.getElementById("action-area");
  if (!area) return;
  const busy = [...area.querySelectorAll("textarea")].some((t) => t.value.trim())
    || area.contains(document.activeElement);
  if (busy) return;
  const resp = await fetch(pageUrl, {headers: {Accept: "text/html"}});
  if (!resp.ok) return;
  const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
  const fresh = doc.getElementById("action-area");
  if (fresh) area.replaceWith(fresh);
}

function poll(el) {
  const url = el.dataset.poll;
  let last = statusOf(el);
  const tick = async () => {
    try {
      const resp = await fetch(url, {headers: {Accept: "text/html"}});
      if (resp.status === 401) return; // signed out: stop; the next click signs in again
      if (resp.ok) {
        const html = await resp.text();
        if (html !== el.dataset.lastHtml) {
          el.innerHTML = html;
          el.dataset.lastHtml = html;
          localTimes(el);
        }
        const now = statusOf(el);
        if (el.dataset.page && now !== last) await refreshActions(el.dataset.page);
        last = now;
        if (el.dataset.page && TERMINAL.includes(now)) return;
      }
    } catch (err) {
      // the API is restarting or the network blinked: try again on the next tick
    }
    setTimeout(tick, 2000);
  };
  setTimeout(tick, 2000);
}

// The request form: what the chosen pair allows, and the local zone of Start.
function requestForm(form) {
  const rows = [...document.querySelectorAll("tr[data-account]")];
  const account = form.querySelector("#account_id");
  const pset = form.querySelector("#permission_set");
  const duration = form.querySelector("#duration");
  const needs = form.querySelector("[data-needs]");
  const ticketHint = form.querySelector("[data-ticket-hint]");
  const offset = form.querySelector("[data-tz-offset]");
  const update = () => {
    const row = rows.find((r) => r.dataset.account === account.value
      && r.dataset.permissionSet === pset.value);
    if (!row) {
      needs.textContent = "This account and permission set cannot be requested together.";
      return;
    }
    const max = Number(row.dataset.maxSeconds);
    for (const opt of duration.options) opt.disabled = Number(opt.dataset.seconds) > max;
    if (duration.selectedOptions[0] && duration.selectedOptions[0].disabled) {
      const allowed = [...duration.options].filter((o) => !o.disabled);
      if (allowed.length) duration.value = allowed[allowed.length - 1].value;
    }
    const maxWords = row.querySelector('td[data-label="At most"]').textContent;
    form.querySelector("[data-max-words]").textContent = maxWords;
    ticketHint.textContent = row.dataset.ticket === "true" ? "(required)" : "(optional)";
    needs.textContent = row.dataset.approval === "true"
      ? "This needs approval before it starts." : "This needs no approval.";
  };
  account.addEventListener("change", update);
  pset.addEventListener("change", update);
  form.addEventListener("submit", () => {
    const start = form.querySelector("#start_at").value;
    const when = start ? new Date(start) : new Date();
    offset.value = String(when.getTimezoneOffset());
  });
  update();
}

function auditForm(form) {
  form.addEventListener("submit", () => {
    form.querySelector("[data-tz-offset]").value = String(new Date().getTimezoneOffset());
  });
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  document.querySelectorAll("[data-poll]").forEach(poll);
  const form = document.getElementById("request-form");
  if (form) requestForm(form);
  const audit = document.getElementById("audit-filters");
  if (audit) auditForm(audit);
});
