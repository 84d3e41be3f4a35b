// The dashboard's only script. It reads the API token from the page
// address's fragment (#token=…, which browsers never send to a server),
// keeps it for this tab only, and polls the node's own API with it.
// Every value is written with textContent: nothing from the API is ever
// parsed as HTML.
"use strict";

const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.has("token")) {
  sessionStorage.setItem("kith-token", fragment.get("token"));
  history.replaceState(null, "", location.pathname);
}
const token = sessionStorage.getItem("kith-token");

const $ = (id) => document.getElementById(id);

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

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
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
      tr.append(siteLink(mirror.target, path), cell(mirror.sequence == null ? "–" : String(mirror.sequence)),
        cell(String(mirror.files)), cell(bytes(mirror.bytes)), cell(state));
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
      tr.append(id, addrs);
      return tr;
    }));
  } catch (error) {
    $("state").textContent = "unreachable";
    $("state").className = "state down";
    problem("The node did not answer: " + error.message);
  }
}

refresh();
setInterval(refresh, 2000);
