// The OEM console: two pages over the JSON API (docs/api.md), with the
// token the user signs in with (kept in this tab's sessionStorage only).
"use strict";

// The API sits where the page is: "/" when deployed, "/lambda-url/api/"
// under `cargo lambda watch`.
const BASE = location.pathname.replace(/\/$/, "");
const $ = (selector) => document.querySelector(selector);

function token() { return sessionStorage.getItem("dpl-token"); }

function say(text, kind) {
  const box = $("#message");
  box.textContent = text;
  box.className = kind || "";
}

async function api(method, path, body) {
  const options = { method, headers: { Authorization: "Bearer " + token() } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(BASE + path, options);
  const data = await response.json();
  if (!response.ok) {
    const error = (data && data.error) || {};
    if (response.status === 401) { signOut(); }
    throw new Error((error.code || response.status) + ": " + (error.message || "request failed"));
  }
  return data;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) { td.className = className; }
  row.appendChild(td);
  return td;
}

function button(parent, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", onClick);
  parent.appendChild(b);
  return b;
}

function destination(stream) {
  const d = stream.destination || {};
  if (d.kinesis) { return d.kinesis.stream_arn; }
  if (d.eventhubs) { return d.eventhubs.namespace + "/" + d.eventhubs.hub; }
  return d.stream_arn || [d.namespace, d.hub].filter(Boolean).join("/");
}

function list(selection) {
  return Array.isArray(selection) ? selection.join(", ") : String(selection);
}

async function action(label, work) {
  try {
    say(label + "...");
    const message = await work();
    say(message, "ok");
  } catch (error) {
    say(label + " failed: " + error.message, "error");
  }
}

async function loadStreams() {
  const { streams } = await api("GET", "/streams");
  const body = $("#streams tbody");
  body.replaceChildren();
  $("#no-streams").hidden = streams.length > 0;
  for (const stream of streams) {
    const row = document.createElement("tr");
    row.dataset.id = stream.id;
    row.dataset.name = stream.name;
    cell(row, stream.name, "name");
    cell(row, stream.transport);
    cell(row, destination(stream));
    cell(row, list(stream.filters.event_types));
    cell(row, stream.status, "status status-" + stream.status);
    const health = stream.health || {};
    cell(row, health.delivery + (health.last_error ? " (last error: " + health.last_error + ")" : ""), "health");
    cell(row, health.dead_letters);
    cell(row, health.last_delivery || "never");
    const actions = cell(row, "", "actions");
    if (stream.status === "enabled") {
      button(actions, "Disable", () => action("Disabling " + stream.name, async () => {
        await api("POST", "/streams/" + stream.id + "/disable");
        await loadStreams();
        return stream.name + " disabled";
      }));
    } else {
      button(actions, "Enable", () => action("Enabling " + stream.name, async () => {
        await api("POST", "/streams/" + stream.id + "/enable");
        await loadStreams();
        return stream.name + " enabled";
      }));
    }
    button(actions, "Test", () => action("Testing " + stream.name, async () => {
      const tested = await api("POST", "/streams/" + stream.id + "/test");
      return "Test event delivered to " + tested.target + " (event " + tested.event_id + ")";
    }));
    button(actions, "Delete", () => {
      if (!confirm("Delete " + stream.name + " and its credentials?")) { return; }
      action("Deleting " + stream.name, async () => {
        await api("DELETE", "/streams/" + stream.id);
        await loadStreams();
        return stream.name + " deleted";
      });
    });
    body.appendChild(row);
  }
}

function createRequest(form) {
  const data = new FormData(form);
  const text = (name) => (data.get(name) || "").trim();
  const request = { name: text("name"), description: text("description"), transport: text("transport") };
  const types = data.getAll("event_types");
  request.event_types = types.length ? types.join(",") : "*";
  request.models = text("models") || "*";
  request.properties = text("properties") || "*";
  const optional = (name) => { if (text(name)) { request[name] = text(name); } };
  if (request.transport === "kinesis") {
    optional("stream_arn");
    optional("role_arn");
    optional("external_id");
    if (text("access_key_id") || text("secret_access_key")) {
      request.access_key = { access_key_id: text("access_key_id"), secret_access_key: text("secret_access_key") };
    }
  } else {
    optional("namespace");
    optional("hub");
    optional("connection_string");
  }
  return request;
}

async function loadExport() {
  const credentials = $("#credentials");
  try {
    const shown = await api("GET", "/exports/credentials");
    credentials.textContent = "User " + shown.user + ", access key " + shown.access_key_ids.join(", ") +
      ": reads s3://" + shown.bucket + "/" + shown.prefix;
    $("#credentials-create").hidden = true;
    $("#credentials-refresh").hidden = false;
  } catch (error) {
    credentials.textContent = "No download credentials yet.";
    $("#credentials-create").hidden = false;
    $("#credentials-refresh").hidden = true;
  }
  const { hours } = await api("GET", "/exports?hours=48");
  const body = $("#hours tbody");
  body.replaceChildren();
  for (const hour of hours.filter((h) => h.files.length > 0)) {
    const row = document.createElement("tr");
    cell(row, hour.hour, "hour");
    const files = cell(row, "");
    for (const file of hour.files) {
      const link = document.createElement("a");
      link.href = "#export";
      link.className = "download";
      link.textContent = file.type + ".csv (" + file.rows + " rows)";
      link.addEventListener("click", (event) => {
        event.preventDefault();
        action("Signing " + file.type, async () => {
          const label = hour.hour.slice(0, 13);
          const { url } = await api("GET", "/exports/" + file.type + "/" + label + "/url");
          window.open(url, "_blank");
          return "Download link made (valid a few minutes)";
        });
      });
      files.appendChild(link);
      files.appendChild(document.createTextNode(" "));
    }
    body.appendChild(row);
  }
}

function showKey(key) {
  const box = $("#new-key");
  box.hidden = false;
  box.textContent = "Access key id:     " + key.access_key_id + "\nSecret access key: " + key.secret_access_key +
    "\nShown this once: store it now.";
}

function signOut() {
  sessionStorage.removeItem("dpl-token");
  show();
}

function claims(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch (error) {
    return {};
  }
}

async function show() {
  const page = location.hash === "#export" ? "export" : "streams";
  const signedIn = Boolean(token());
  $("#signin").hidden = signedIn;
  $("#signout").hidden = !signedIn;
  $("#page-streams").hidden = !signedIn || page !== "streams";
  $("#page-export").hidden = !signedIn || page !== "export";
  $("#nav-streams").classList.toggle("active", page === "streams");
  $("#nav-export").classList.toggle("active", page === "export");
  $("#who").textContent = signedIn ? "OEM " + (claims(token()).oem_id || "?") : "";
  if (!signedIn) { return; }
  try {
    await (page === "export" ? loadExport() : loadStreams());
  } catch (error) {
    say(error.message, "error");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("dpl-token", $("#token").value.trim());
    say("");
    show();
  });
  $("#signout").addEventListener("click", signOut);
  $("#transport").addEventListener("change", (event) => {
    const kinesis = event.target.value === "kinesis";
    document.querySelector("fieldset.kinesis").hidden = !kinesis;
    document.querySelector("fieldset.eventhubs").hidden = kinesis;
  });
  $("#create-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    action("Creating stream", async () => {
      const created = await api("POST", "/streams", createRequest(form));
      form.reset();
      await loadStreams();
      return "Created " + created.name + " (" + created.id + ")";
    });
  });
  $("#credentials-create").addEventListener("click", () => action("Creating credentials", async () => {
    showKey(await api("POST", "/exports/credentials"));
    await loadExport();
    return "Credentials created";
  }));
  $("#credentials-refresh").addEventListener("click", () => action("Refreshing credentials", async () => {
    showKey(await api("POST", "/exports/credentials/refresh"));
    await loadExport();
    return "Credentials refreshed: the old key no longer works";
  }));
  window.addEventListener("hashchange", show);
  show();
});
