// The web app's first script: the token, the API helper, and the pages
// that show the node's state (Home's cards, Network's tables, the names
// and mirrors tables) and its feed. It reads the API token from the page
// address's fragment (#token=…, which browsers never send to a server),
// keeps it for this tab only, and polls the node's own API with it. The
// other pages are in app.js, files.js, friends.js, names.js and charts.js,
// loaded after this one, which use its helpers. Every value is written
// with textContent: nothing from the API is ever parsed as HTML.
"use strict";

const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.has("token")) {
  sessionStorage.setItem("kith-token", fragment.get("token"));
  history.replaceState(null, "", location.pathname);
}
const token = sessionStorage.getItem("kith-token");

const $ = (id) => document.getElementById(id);

// Called with (status, id, peers) after every refresh that reached the
// node: the charts and the pages in the other scripts.
const onStatus = [];

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function duration(secs) {
  const d = Math.floor(secs / 86400), h = Math.floor(secs / 3600) % 24;
  const m = Math.floor(secs / 60) % 60, s = secs % 60;
  if (d > 0) return d + " d " + h + " h";
  if (h > 0) return h + " h " + m + " min";
  if (m > 0) return m + " min " + s + " s";
  return s + " s";
}

function fillTable(table, rows) {
  table.replaceChildren(...rows.map(([name, value]) => {
    const tr = document.createElement("tr");
    const th = document.createElement("td");
    th.textContent = name;
    const td = document.createElement("td");
    td.className = "num";
    td.textContent = value;
    tr.append(th, td);
    return tr;
  }));
}

// A GET, or with `request` a POST of it as JSON; the answer's JSON, or an
// Error with the API's sentence.
async function api(path, request) {
  const headers = { Authorization: "Bearer " + token };
  const options = { headers, cache: "no-store" };
  if (request !== undefined) {
    options.method = "POST";
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(request);
  }
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || ("HTTP " + response.status));
  return body;
}

function problem(text) {
  $("problem").hidden = !text;
  $("problem").textContent = text || "";
}

async function refresh() {
  if (!token) {
    problem("No API token. Open the address that `kith dashboard` prints (it carries the token after #).");
    $("state").textContent = "no token";
    $("state").className = "state down";
    return;
  }
  try {
    const [status, peers, id, names, mirrors] = await Promise.all([
      api("/v1/status"), api("/v1/peers"), api("/v1/id"), api("/v1/names"), api("/v1/mirrors"),
    ]);
    problem("");
    $("state").textContent = "live";
    $("state").className = "state live";
    $("peer-id").textContent = status.peer_id;
    $("uptime").textContent = duration(status.uptime_secs);
    $("peers").textContent = status.peers;
    $("shares").textContent = status.shares_held.toLocaleString();
    // Whether peers can dial this node (AutoNAT), why, and its relays.
    const reach = id.reachability;
    $("reachability").textContent = reach ? reach.reachability : "–";
    $("reachability-why").textContent = reach
      ? reach.reason + (reach.relays.length ? "; relays: " + reach.relays.join(", ") : "")
        + (reach.relaying_for_others ? "; relaying for others" : "")
      : "";
    const used = status.quota > 0 ? status.bytes_held / status.quota : 0;
    $("store-text").textContent = bytes(status.bytes_held) + " of " + bytes(status.quota) + " (" + (100 * used).toFixed(1) + " %)";
    $("store-bar").style.width = Math.min(100, 100 * used) + "%";
    fillTable($("serving"), [
      ["shares served to peers", status.shares_served.toLocaleString()],
      ["bytes served", bytes(status.bytes_served)],
      ["passed on from memory (swarming)", status.served_from_memory.toLocaleString()],
      ["requests sent to a peer that just got the share", status.swarm_redirects.toLocaleString()],
      ["redirects followed that led nowhere", status.swarm_redirects_failed.toLocaleString()],
    ]);
    fillTable($("upkeep"), [
      ["repair rounds", status.repair_rounds],
      ["stripes checked / repaired", status.stripes_checked + " / " + status.stripes_repaired],
      ["shares repaired", status.shares_repaired],
      ["repairs under way", status.repairs_running],
      ["repairs that could not finish", status.repair_failures],
      ["bytes fetched / sent by repair", bytes(status.repair_bytes_fetched) + " / " + bytes(status.repair_bytes_sent)],
      ["scrub: shares checked (passes)", status.scrub_checked + " (" + status.scrub_passes + ")"],
      ["scrub: damaged shares found", status.scrub_damaged],
      ["leases renewed", status.leases_renewed],
      ["shares expired", status.shares_expired],
    ]);
    // Links open published content on the gateway: its own origin, which
    // holds no token.
    const gateway = id.gateway || "";
    gatewayUrl = gateway;
    $("gateway").hidden = !gateway;
    $("gateway").href = gateway;
    $("gateway").textContent = gateway ? "gateway " + gateway : "";
    const siteLink = (text, path) => {
      const cell = document.createElement("td");
      cell.className = "mono";
      if (gateway && path) {
        const link = document.createElement("a");
        link.href = gateway + path;
        link.rel = "noopener";
        link.target = "_blank";
        link.textContent = text;
        cell.append(link);
      } else {
        cell.textContent = text;
      }
      return cell;
    };
    const cell = (text) => {
      const td = document.createElement("td");
      td.textContent = text;
      return td;
    };
    $("names").tBodies[0].replaceChildren(...names.names.map((entry) => {
      const tr = document.createElement("tr");
      tr.append(cell(entry.label || "(default)"), siteLink(entry.name, "n/" + entry.name + "/"),
        cell(entry.sequence == null ? "–" : String(entry.sequence)));
      return tr;
    }));
    $("mirrors").tBodies[0].replaceChildren(...mirrors.mirrors.map((mirror) => {
      const tr = document.createElement("tr");
      const path = mirror.target.startsWith("kith:") ? "k/" + mirror.target + "/" : "n/" + mirror.target + "/";
      const state = mirror.error ? "failing: " + mirror.error : (mirror.held ? "complete" : "copying");
      const stop = el("button", "link", "Stop");
      stop.type = "button";
      stop.title = "stop mirroring (the copy here is dropped)";
      stop.addEventListener("click", () => unmirror(mirror.target, stop));
      const actions = cell("");
      actions.append(stop);
      tr.append(siteLink(mirror.target, path), cell(mirror.sequence == null ? "–" : String(mirror.sequence)),
        cell(String(mirror.files)), cell(bytes(mirror.bytes)), cell(state), actions);
      return tr;
    }));
    $("peer-list").tBodies[0].replaceChildren(...peers.peers.map((peer) => {
      const tr = document.createElement("tr");
      const id = document.createElement("td");
      id.className = "mono";
      id.textContent = peer.peer_id;
      const addrs = document.createElement("td");
      addrs.className = "mono";
      addrs.textContent = peer.addrs.join("  ");
      const via = document.createElement("td");
      const relayed = (peer.connections || []).filter((addr) => addr.includes("/p2p-circuit")).length;
      const direct = (peer.connections || []).length - relayed;
      via.textContent = direct > 0 ? "direct" : relayed > 0 ? "through a relay" : "–";
      tr.append(id, via, addrs);
      return tr;
    }));
    for (const listener of onStatus) {
      try {
        listener(status, id, peers);
      } catch (error) {
        console.error(error);
      }
    }
  } catch (error) {
    $("state").textContent = "unreachable";
    $("state").className = "state down";
    problem("The node did not answer: " + error.message);
    return;
  }
  await refreshFeed();
}

// Stops mirroring `target` (the Stop button of its row).
async function unmirror(target, button) {
  button.disabled = true;
  try {
    await api("/v1/mirrors/rm", { target });
    await refresh();
  } catch (error) {
    problem("The mirror was not stopped: " + error.message);
    button.disabled = false;
  }
}

// The feed: this node's timeline (its own posts and those of the feeds it
// follows, newest first), each reply under the post it answers, images
// through the gateway (its own origin, which holds no token); the post box
// signs and publishes to this node's feed.
let gatewayUrl = "";
let replyTo = null; // the id of the post the next post answers
let shownTimeline = null; // what the timeline shows, so that it is redrawn only on change

const IMAGE = /\.(png|jpe?g|gif|webp|avif|svg|bmp|ico)$/i;
const LOOPBACK = /^http:\/\/(127\.0\.0\.1|localhost):\d+\//;

function el(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

function feedProblem(text) {
  $("feed-problem").hidden = !text;
  $("feed-problem").textContent = text || "";
}

function postState(text, bad) {
  $("post-state").textContent = text;
  $("post-state").className = bad ? "bad" : "muted";
}

function setReply(item) {
  replyTo = item ? item.id : null;
  $("replying").hidden = !item;
  $("replying-to").textContent = item ? item.id.slice(0, 8) + (item.text ? " “" + item.text.slice(0, 60) + "”" : "") : "";
  if (item) $("post-text").focus();
}

async function refreshFeed() {
  try {
    const timeline = await api("/v1/feed?limit=50");
    feedProblem("");
    showTimeline(timeline);
  } catch (error) {
    feedProblem("The timeline could not be read: " + error.message);
  }
}

function showTimeline(timeline) {
  const key = JSON.stringify([timeline, gatewayUrl]);
  if (key === shownTimeline) return;
  shownTimeline = key;
  const own = new Set(timeline.feeds.filter((feed) => feed.own).map((feed) => feed.author));
  const shown = new Set(timeline.items.map((item) => item.id));
  // Replies under the post they answer, oldest first; the others on top.
  const replies = new Map();
  for (const item of [...timeline.items].reverse()) {
    if (item.reply_to && shown.has(item.reply_to)) {
      if (!replies.has(item.reply_to)) replies.set(item.reply_to, []);
      replies.get(item.reply_to).push(item);
    }
  }
  const render = (item) => {
    const article = postElement(item, own, shown.has(item.reply_to));
    const under = replies.get(item.id) || [];
    if (under.length > 0) {
      const box = el("div", "replies");
      box.append(...under.map(render));
      article.append(box);
    }
    return article;
  };
  const rows = timeline.feeds.filter((feed) => feed.forks.length > 0).map((feed) =>
    el("p", "problem", feed.author + " signed two different posts for sequence(s) " + feed.forks.join(", ") + "."));
  rows.push(...timeline.items.filter((item) => !item.reply_to || !shown.has(item.reply_to)).map(render));
  if (timeline.items.length === 0) {
    rows.push(el("p", "muted", "No posts yet. Write one above, or follow someone: kith follow PEER_ID."));
  }
  $("timeline").replaceChildren(...rows);
}

function postElement(item, own, parentShown) {
  const article = el("article", "post");
  article.dataset.id = item.id;
  const meta = el("div", "meta");
  const author = el("span", "mono", own.has(item.author) ? "you" : item.author.slice(0, 4) + "…" + item.author.slice(-8));
  author.title = item.author;
  meta.append(author, el("span", "", new Date(item.time_ms).toLocaleString()));
  article.append(meta);
  if (item.reply_to && !parentShown) article.append(el("div", "muted", "reply to " + item.reply_to.slice(0, 8)));
  if (item.text) article.append(el("p", "text", item.text));
  if (item.attachments.length > 0) {
    const files = el("div", "attachments");
    for (const [name, capability] of item.attachments) {
      if (!gatewayUrl) {
        files.append(el("div", "mono", name + " " + capability));
        continue;
      }
      // Inline only from a loopback gateway: the page's policy allows no
      // other image source.
      const inline = IMAGE.test(name) && LOOPBACK.test(gatewayUrl);
      const link = el("a", "", inline ? undefined : name);
      link.href = gatewayUrl + "k/" + encodeURIComponent(capability);
      link.rel = "noopener";
      link.target = "_blank";
      if (inline) {
        const image = el("img");
        image.src = link.href;
        image.alt = name;
        link.append(image);
      }
      files.append(link);
    }
    article.append(files);
  }
  const reply = el("button", "link", "Reply");
  reply.type = "button";
  reply.addEventListener("click", () => setReply(item));
  article.append(reply);
  return article;
}

async function sendPost() {
  if ($("post-button").disabled) return;
  const text = $("post-text").value.trim();
  if (!text) {
    postState("Write something to post first.", true);
    return;
  }
  $("post-button").disabled = true;
  postState("posting…");
  try {
    const request = { text };
    if (replyTo) request.reply_to = replyTo;
    const posted = await api("/v1/post", request);
    $("post-text").value = "";
    setReply(null);
    postState("posted " + posted.id.slice(0, 8));
    await refreshFeed();
  } catch (error) {
    postState("The post was not published: " + error.message, true);
  } finally {
    $("post-button").disabled = false;
  }
}

$("post-button").addEventListener("click", sendPost);
$("post-text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    sendPost();
  }
});
$("reply-cancel").addEventListener("click", () => setReply(null));

refresh();
setInterval(refresh, 2000);
