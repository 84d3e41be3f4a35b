// Runs the dashboard's real script (crates/api/src/dashboard/dashboard.js)
// under Node.js against a running node's API, with just enough of a DOM
// for it, and checks what it rendered; it also replies to the newest post
// through the feed's post box. Used by `up.rs`.
//
//   node harness.mjs SCRIPT URL   (URL: what `kith dashboard` printed)
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";

const [script, address] = process.argv.slice(2);
const url = new URL(address);

class Element {
  constructor(tag, id) {
    Object.assign(this, { tag, id, hidden: false, textContent: "", className: "", style: {}, dataset: {} });
    Object.assign(this, { value: "", disabled: false, children: [], listeners: new Map() });
    this.tBodies = [{ children: [], replaceChildren(...children) { this.children = children; } }];
  }
  append(...children) { this.children.push(...children); }
  replaceChildren(...children) { this.children = children; }
  addEventListener(type, listener) { this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]); }
  dispatch(type, event = {}) { for (const listener of this.listeners.get(type) ?? []) listener({ preventDefault() {}, ...event }); }
  focus() {}
}
const elements = new Map();
function element(id) {
  if (!elements.has(id)) elements.set(id, new Element("?", id));
  return elements.get(id);
}
globalThis.document = { getElementById: element, createElement: (tag) => new Element(tag) };
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
const wait = async (what, condition) => {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok(condition(), "timed out waiting for " + what);
};
// The feed section: the timeline as a tree of posts, each with its text,
// author, "reply to" note, images and replies.
const posts = (children) => children.filter((child) => child.className === "post").map((article) => {
  const part = (className) => article.children.find((child) => child.className === className);
  return {
    id: article.dataset.id,
    author: article.children[0].children[0].textContent,
    text: part("text")?.textContent ?? "",
    note: part("muted")?.textContent ?? null,
    images: (part("attachments")?.children ?? []).flatMap((link) => link.children.map((image) => image.src)),
    replies: posts(part("replies")?.children ?? []),
  };
});
await wait("the timeline", () => element("timeline").children.length > 0 || element("feed-problem").textContent);
assert.equal(element("feed-problem").textContent, "", "the feed section reported a problem");
const before = posts(element("timeline").children);
assert.ok(before.length > 0, "the timeline shows no post");
// Reply from the post box to the newest post: Reply, type, Post; the post
// box empties and the reply shows under the post without waiting for the
// timer.
const newest = element("timeline").children.find((child) => child.className === "post");
newest.children.find((child) => child.tag === "button").dispatch("click");
assert.equal(element("replying").hidden, false);
element("post-text").value = "  and one from the dashboard\n";
element("post-button").dispatch("click");
await wait("the reply to show", () => posts(element("timeline").children)[0].replies.some((r) => r.text === "and one from the dashboard"));
assert.equal(element("post-text").value, "");
assert.equal(element("replying").hidden, true);
assert.match(text("post-state"), /^posted [0-9a-f]{8}$/);
// An empty post is refused in the page, with a sentence.
element("post-button").dispatch("click");
assert.equal(text("post-state"), "Write something to post first.");
assert.equal(element("post-state").className, "bad");
// One the node refuses (over 4 KiB of UTF-8): the API's sentence, and the
// text stays in the box.
element("post-text").value = "é".repeat(3000);
element("post-button").dispatch("click");
await wait("the refusal", () => text("post-state").startsWith("The post was not published: "));
assert.equal(element("post-state").className, "bad");
assert.equal(element("post-text").value.length, 3000);
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
  peer_connections: element("peer-list").tBodies[0].children.map((row) => row.children[1].textContent),
  reachability: text("reachability"),
  reachability_why: text("reachability-why"),
  gateway: element("gateway").href,
  names: element("names").tBodies[0].children.map((row) => [
    row.children[0].textContent, row.children[1].children[0]?.href, row.children[2].textContent,
  ]),
  mirrors: element("mirrors").tBodies[0].children.map((row) => [
    row.children[0].children[0]?.textContent, row.children[4].textContent,
  ]),
  timeline_before: before,
  timeline: posts(element("timeline").children),
  refused: text("post-state"),
}));
