// Runs the dashboard's real script (crates/api/src/dashboard/dashboard.js)
// under Node.js against a running node's API, with just enough of a DOM
// for it, and checks what it rendered. Used by `up.rs`.
//
//   node harness.mjs SCRIPT URL   (URL: what `kith dashboard` printed)
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";

const [script, address] = process.argv.slice(2);
const url = new URL(address);

const elements = new Map();
function element(id) {
  if (!elements.has(id)) {
    elements.set(id, {
      id, hidden: false, textContent: "", className: "", style: {},
      children: [],
      replaceChildren(...children) { this.children = children; },
      tBodies: [{ children: [], replaceChildren(...children) { this.children = children; } }],
    });
  }
  return elements.get(id);
}
globalThis.document = {
  getElementById: element,
  createElement: (tag) => ({ tag, textContent: "", className: "", children: [], append(...c) { this.children = c; } }),
};
globalThis.location = { hash: url.hash, pathname: url.pathname };
let replaced = null;
globalThis.history = { replaceState: (_, __, path) => { replaced = path; } };
const session = new Map();
globalThis.sessionStorage = { setItem: (k, v) => session.set(k, v), getItem: (k) => session.get(k) ?? null };
const asked = [];
const realFetch = globalThis.fetch;
globalThis.fetch = (path, options) => {
  asked.push({ path, auth: options?.headers?.Authorization });
  return realFetch(url.origin + path, options);
};
let refreshes = 0;
globalThis.setInterval = () => { refreshes += 1; };

await import(pathToFileURL(script).href);
// The first refresh runs at load; wait for it to finish.
for (let i = 0; i < 100 && element("state").textContent !== "live" && !element("problem").textContent; i++) {
  await new Promise((resolve) => setTimeout(resolve, 50));
}

const text = (id) => element(id).textContent;
assert.equal(element("problem").textContent, "", "the dashboard reported a problem");
assert.equal(text("state"), "live");
assert.equal(replaced, "/dashboard", "the token must leave the address bar");
assert.equal(refreshes, 1, "the dashboard refreshes on a timer");
assert.ok(asked.length >= 2 && asked.every((a) => a.auth === "Bearer " + url.hash.split("token=")[1]));
assert.match(text("store-text"), /of .* \(\d+\.\d %\)/);
assert.equal(element("serving").children.length, 5);
assert.equal(element("upkeep").children.length, 10);
console.log(JSON.stringify({
  peer_id: text("peer-id"),
  peers: String(text("peers")),
  peer_rows: element("peer-list").tBodies[0].children.map((row) => row.children[0].textContent),
  gateway: element("gateway").href,
  names: element("names").tBodies[0].children.map((row) => [
    row.children[0].textContent, row.children[1].children[0]?.href, row.children[2].textContent,
  ]),
  mirrors: element("mirrors").tBodies[0].children.map((row) => [
    row.children[0].children[0]?.textContent, row.children[4].textContent,
  ]),
}));
