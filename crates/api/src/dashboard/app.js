// The web app's shared parts, after dashboard.js: the tabs (each page has
// an address, /dashboard#files and so on), uploads with progress,
// downloads with progress, QR codes, copying, and the box that shows a
// capability. Uses dashboard.js's helpers ($, el, api, bytes, token).
"use strict";

// ---- Tabs ---------------------------------------------------------------

const TABS = ["home", "files", "friends", "inbox", "names", "network"];
// Called with the tab's name whenever a tab is shown.
const onTab = [];

function currentTab() {
  const name = location.hash.slice(1);
  return TABS.includes(name) ? name : "home";
}

function showTab() {
  const tab = currentTab();
  for (const page of document.querySelectorAll(".page")) {
    page.hidden = page.dataset.page !== tab;
  }
  for (const link of document.querySelectorAll("#tabs a")) {
    const active = link.dataset.tab === tab;
    link.classList.toggle("active", active);
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  for (const listener of onTab) listener(tab);
}

window.addEventListener("hashchange", showTab);

// Opens `tab`, focusing `focus` (an element id) if given.
function openTab(tab, focus) {
  if (currentTab() !== tab) location.hash = "#" + tab;
  else showTab();
  if (focus) $(focus).focus();
}

// ---- Requests with progress ---------------------------------------------

// A random id for a streamed request (`x-kith-request`): if the node fails
// it while the browser is still sending, the browser may see only a broken
// connection, and GET /v1/failures/ID then gives the node's sentence.
function requestId() {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// POSTs `body` (a File or Blob, streamed from disk by the browser) to
// `path`, calling `progress(sent, total)` as it goes; the answer's JSON,
// or an Error with the node's sentence (its `kind` is the error's kind).
function upload(path, body, progress) {
  const id = requestId();
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("Authorization", "Bearer " + token);
    xhr.setRequestHeader("x-kith-request", id);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.addEventListener("progress", (event) => {
      if (progress) progress(event.loaded, event.lengthComputable ? event.total : body.size);
    });
    xhr.addEventListener("load", () => {
      let answer = {};
      try {
        answer = JSON.parse(xhr.responseText);
      } catch (_) {
        // Not JSON: the status says what happened.
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(answer);
      } else {
        const error = new Error(answer.message || ("HTTP " + xhr.status));
        error.kind = answer.error;
        reject(error);
      }
    });
    xhr.addEventListener("error", async () => {
      // The connection broke: ask the node what it said.
      try {
        const failure = await api("/v1/failures/" + id);
        const error = new Error(failure.message);
        error.kind = failure.error;
        reject(error);
      } catch (_) {
        reject(new Error("the connection to the node broke off"));
      }
    });
    xhr.send(body);
  });
}

// GETs `path` (a file: /v1/get?cap=… or /v1/inbox/file?arrival=…),
// calling `progress(received, total)` as it arrives; `{blob, size, name,
// type}`. The whole file is held in the browser's memory before it is
// saved (a browser cannot stream a download that needs a header).
async function fetchFile(path, progress) {
  const response = await fetch(path, {
    headers: { Authorization: "Bearer " + token },
    cache: "no-store",
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.message || ("HTTP " + response.status));
  }
  const total = Number(response.headers.get("content-length")) || 0;
  const type = response.headers.get("content-type") || "application/octet-stream";
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    if (progress) progress(received, total);
  }
  if (total && received !== total) {
    throw new Error("the download broke off after " + bytes(received) + " of " + bytes(total));
  }
  return { blob: new Blob(chunks, { type }), size: received, name: response.headers.get("x-kith-name"), type };
}

// Hands `blob` to the browser as a download called `name`.
function saveBlob(blob, name) {
  const link = el("a");
  link.href = URL.createObjectURL(blob);
  link.download = name || "download";
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // Long enough for the browser to have started writing it.
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}

// A progress bar: an element and its setter (`set(done, total)`).
function progressBar() {
  const bar = el("div", "progress");
  const fill = el("div");
  bar.append(fill);
  return {
    element: bar,
    set(done, total) {
      const share = total > 0 ? Math.min(1, done / total) : 0;
      fill.style.width = (100 * share).toFixed(1) + "%";
      bar.title = total > 0 ? bytes(done) + " of " + bytes(total) : bytes(done);
    },
  };
}

// ---- QR codes and copying -----------------------------------------------

// An <img> of `text`'s QR code, drawn by the node (GET /v1/qr), fetched
// with the token and shown through a blob: URL.
function qrImage(text) {
  const image = el("img", "qr");
  image.alt = "QR code of " + text;
  image.width = 180;
  image.height = 180;
  fetch("/v1/qr?text=" + encodeURIComponent(text), {
    headers: { Authorization: "Bearer " + token },
    cache: "no-store",
  })
    .then((response) => {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.blob();
    })
    .then((blob) => {
      image.src = URL.createObjectURL(blob);
    })
    .catch((error) => {
      image.alt = "no QR code: " + error.message;
      image.classList.add("failed");
    });
  return image;
}

// Copies `text`, saying so on `button` for a moment.
async function copyText(text, button) {
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch (_) {
    // No clipboard permission: select a hidden copy and copy that.
    const area = el("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.append(area);
    area.select();
    copied = document.execCommand("copy");
    area.remove();
  }
  const label = button.textContent;
  button.textContent = copied ? "Copied" : "Select and copy it";
  setTimeout(() => { button.textContent = label; }, 1500);
}

// A box showing a capability: its title line, the capability as text with
// a Copy button, its QR code, and links to open it on the gateway and to
// publish it under a name. `folder`: it is a folder's.
function capabilityBox(title, capability, details, folder) {
  const box = el("div", "result");
  box.dataset.capability = capability;
  const text = el("div", "result-text");
  const head = el("div", "result-title");
  head.append(el("strong", "", title));
  if (details) head.append(el("span", "muted", " " + details));
  const cap = el("code", "cap mono", capability);
  const actions = el("div", "row");
  const copy = el("button", "", "Copy");
  copy.type = "button";
  copy.className = "copy";
  copy.addEventListener("click", () => copyText(capability, copy));
  actions.append(copy);
  const publish = el("button", "secondary", "Publish under a name");
  publish.type = "button";
  publish.addEventListener("click", () => {
    $("publish-cap").value = capability;
    openTab("names", "publish-label");
  });
  actions.append(publish);
  if (gatewayUrl) {
    const open = el("a", "", "Open in the gateway");
    open.href = gatewayUrl + "k/" + encodeURIComponent(capability) + (folder ? "/" : "");
    open.rel = "noopener";
    open.target = "_blank";
    actions.append(open);
  }
  text.append(head, cap, actions);
  box.append(text, qrImage(capability));
  return box;
}

// ---- Network: this node's addresses, reachability, relays and caps -------

onStatus.push((status, id) => {
  const reach = id.reachability || {};
  fillTable($("node-facts"), [
    ["peer id", status.peer_id],
    ["reachability", (reach.reachability || "–") + (reach.reason ? " (" + reach.reason + ")" : "")],
    ["relays it is reachable through", (reach.relays || []).join(", ") || "none"],
    ["relaying for others", reach.relaying_for_others ? "yes" : "no"],
    ["listening on", (id.listen_addrs || []).join("  ") || "–"],
  ]);
  const caps = Object.entries(status.rate_limits || {});
  fillTable($("limits"), caps.length > 0
    ? caps.map(([name, rate]) => [name.replaceAll("_", " "), bytes(rate) + "/s"])
    : [["no rate caps", "kith up --max-upload RATE --max-download RATE"]]);
});

// Shown at load, after the other scripts registered their listeners.
document.addEventListener("DOMContentLoaded", showTab);
