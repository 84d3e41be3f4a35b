// The Friends page (the address book; a message or a file to a friend)
// and the Inbox page (messages and received files, live: a long poll of
// GET /v1/inbox?after=N&wait=SECS). Uses app.js and dashboard.js.
"use strict";

// ---- Friends ------------------------------------------------------------

let shownFriends = null; // what the list shows, so that it is redrawn only on change
let friendNames = new Map(); // peer id → petname

function friendState(text, bad) {
  $("friend-state").textContent = text;
  $("friend-state").className = bad ? "bad small" : "muted small";
}

async function loadFriends() {
  try {
    const book = await api("/v1/friends");
    friendNames = new Map(book.friends.map((friend) => [friend.peer_id, friend.name]));
    const key = JSON.stringify(book.friends);
    if (key === shownFriends) return;
    shownFriends = key;
    $("friends-empty").hidden = book.friends.length > 0;
    $("friend-list").replaceChildren(...book.friends.map(friendCard));
  } catch (error) {
    friendState("The address book could not be read: " + error.message, true);
  }
}

// How a delivery went, in words.
function delivered(what, to, delivery) {
  const size = delivery.size != null ? " (" + bytes(delivery.size) + ")" : "";
  if (delivery.via === "direct") {
    return "delivered " + what + size + " to " + to + " directly"
      + (delivery.relay ? " through a relay" : "") + " (seq " + delivery.seq + ")";
  }
  return to + " is offline: " + what + size + " waits in its mailbox on "
    + delivery.mailbox_peers + " peer(s) (seq " + delivery.seq + ")";
}

// One friend: its name and id, a message box and a file picker.
function friendCard(friend) {
  const card = el("div", "friend");
  card.dataset.name = friend.name;
  const head = el("div", "friend-head");
  head.append(el("strong", "", friend.name), el("span", "mono muted", friend.peer_id));
  const remove = el("button", "link", "Remove");
  remove.type = "button";
  remove.addEventListener("click", async () => {
    if (!confirm("Remove " + friend.name + " from the address book?")) return;
    try {
      await api("/v1/friends/rm", { name: friend.name });
      await loadFriends();
    } catch (error) {
      friendState(friend.name + " was not removed: " + error.message, true);
    }
  });
  head.append(remove);

  const text = el("textarea", "message-text");
  text.rows = 2;
  text.placeholder = "A message to " + friend.name + " (Ctrl+Enter sends)";
  const send = el("button", "send-message", "Send message");
  send.type = "button";
  const fileLabel = el("label", "button secondary", "Send a file… ");
  const file = el("input", "send-file");
  file.type = "file";
  fileLabel.append(file);
  const actions = el("div", "row");
  actions.append(send, fileLabel);
  const bar = progressBar();
  bar.element.hidden = true;
  const state = el("div", "send-state muted small");
  const say = (sentence, bad) => {
    state.textContent = sentence;
    state.className = "send-state small " + (bad ? "bad" : "muted");
  };

  const sendMessage = async () => {
    const message = text.value.trim();
    if (!message) {
      say("Write a message first.", true);
      return;
    }
    send.disabled = true;
    say("sending…");
    try {
      const delivery = await api("/v1/msg", { to: friend.name, text: message });
      text.value = "";
      say(delivered("the message", friend.name, delivery));
    } catch (error) {
      say("Not sent: " + error.message, true);
    } finally {
      send.disabled = false;
    }
  };
  send.addEventListener("click", sendMessage);
  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      sendMessage();
    }
  });

  file.addEventListener("change", async () => {
    const chosen = file.files[0];
    file.value = "";
    if (!chosen) return;
    bar.element.hidden = false;
    bar.set(0, chosen.size);
    const path = "/v1/send?to=" + encodeURIComponent(friend.name) + "&name="
      + encodeURIComponent(chosen.name) + "&size=" + chosen.size;
    const sendOnce = (extra) => upload(path + extra, chosen, (sent, total) => {
      bar.set(sent, total);
      say("sending " + chosen.name + ": " + bytes(sent) + " of " + bytes(total));
    });
    try {
      let delivery;
      try {
        delivery = await sendOnce("");
      } catch (error) {
        // The transfer broke off part way (the friend went away): the
        // friend kept nothing; it goes to the friend's mailbox instead.
        if (error.kind !== "interrupted") throw error;
        say(error.message + "; sending it to the mailbox of " + friend.name + " instead");
        delivery = await sendOnce("&via=mailbox");
      }
      bar.set(chosen.size, chosen.size);
      say(delivered(chosen.name, friend.name, delivery));
    } catch (error) {
      say(chosen.name + " was not sent: " + error.message, true);
    }
  });

  card.append(head, text, actions, bar.element, state);
  return card;
}

async function addFriend() {
  const name = $("friend-name").value.trim();
  const peer = $("friend-peer").value.trim();
  if (!name || !peer) {
    friendState("Give both a petname and the friend's peer id.", true);
    return;
  }
  $("friend-add").disabled = true;
  try {
    const added = await api("/v1/friends", { name, peer_id: peer });
    $("friend-name").value = "";
    $("friend-peer").value = "";
    friendState(added.added ? "added " + added.name : added.name + " was already there");
    await loadFriends();
  } catch (error) {
    friendState("Not added: " + error.message, true);
  } finally {
    $("friend-add").disabled = false;
  }
}

$("friend-add").addEventListener("click", addFriend);
$("friend-peer").addEventListener("keydown", (event) => {
  if (event.key === "Enter") addFriend();
});
onStatus.push((status) => {
  if ($("my-peer-id").textContent !== status.peer_id) {
    $("my-peer-id").textContent = status.peer_id;
    $("my-peer-qr").replaceChildren(qrImage(status.peer_id));
  }
});

// ---- Inbox --------------------------------------------------------------

const inbox = new Map(); // arrival → entry
let lastArrival = 0;
let seenArrival = 0; // the newest arrival shown while the Inbox was open
let shownInbox = null;

function inboxState(text, bad) {
  $("inbox-state").textContent = text;
  $("inbox-state").className = bad ? "bad small" : "muted small";
}

function sender(entry) {
  return entry.from_name || friendNames.get(entry.from) || entry.from.slice(0, 4) + "…" + entry.from.slice(-8);
}

function inboxEntry(entry) {
  const item = el("article", "message " + entry.kind);
  item.dataset.arrival = String(entry.arrival);
  const meta = el("div", "meta");
  const from = el("strong", "", sender(entry));
  from.title = entry.from;
  meta.append(from, el("span", "", new Date(entry.sent_at_ms).toLocaleString()),
    el("span", "", entry.via === "mailbox" ? "from its mailbox" : "direct"));
  item.append(meta);
  if (entry.kind === "text") {
    item.append(el("p", "text", entry.text));
    return item;
  }
  const line = el("div", "file-line");
  line.append(el("span", "file-name", entry.name), el("span", "muted", " " + bytes(entry.size)));
  if (entry.state === "received") {
    const get = el("button", "secondary", "Download");
    get.type = "button";
    const bar = progressBar();
    bar.element.hidden = true;
    const note = el("span", "muted small");
    get.addEventListener("click", async () => {
      get.disabled = true;
      bar.element.hidden = false;
      try {
        const file = await fetchFile("/v1/inbox/file?arrival=" + entry.arrival, (got, total) => bar.set(got, total));
        saveBlob(file.blob, entry.name);
        note.textContent = " saved";
      } catch (error) {
        note.textContent = " " + error.message;
        note.className = "bad small";
      } finally {
        get.disabled = false;
      }
    });
    line.append(" ", get, note);
    item.append(line, bar.element);
    if (entry.blake3) item.append(el("div", "mono muted small", "blake3 " + entry.blake3));
  } else if (entry.state === "fetching") {
    line.append(el("span", "muted", " · being fetched from the network…"));
    item.append(line);
  } else {
    line.append(el("span", "bad", " · not fetched yet: " + (entry.detail || "failed") + " (tried again at the next mail check)"));
    item.append(line);
  }
  return item;
}

function showInbox() {
  const entries = [...inbox.values()].sort((a, b) => b.arrival - a.arrival);
  const key = JSON.stringify(entries) + JSON.stringify([...friendNames]);
  if (key !== shownInbox) {
    shownInbox = key;
    $("inbox-empty").hidden = entries.length > 0;
    $("inbox-list").replaceChildren(...entries.map(inboxEntry));
  }
  if (currentTab() === "inbox") seenArrival = lastArrival;
  const unread = entries.filter((entry) => entry.arrival > seenArrival).length;
  $("inbox-count").hidden = unread === 0;
  $("inbox-count").textContent = String(unread);
}

function take(entries) {
  for (const entry of entries) {
    inbox.set(entry.arrival, entry);
    lastArrival = Math.max(lastArrival, entry.arrival);
  }
}

// The whole inbox once, then a long poll for what arrives; files still
// being fetched are looked at again every few seconds until they land.
async function followInbox() {
  if (!token) return;
  let first = true;
  for (;;) {
    try {
      if (first || [...inbox.values()].some((entry) => entry.state === "fetching")) {
        take((await api("/v1/inbox")).entries);
        if (first) seenArrival = lastArrival;
        first = false;
        showInbox();
      }
      const waiting = [...inbox.values()].some((entry) => entry.state === "fetching");
      const answer = await api("/v1/inbox?after=" + lastArrival + "&wait=" + (waiting ? 5 : 50));
      take(answer.entries);
      inboxState("Live: new messages and files show as they arrive.");
      showInbox();
    } catch (error) {
      inboxState("The inbox could not be read: " + error.message + " (trying again)", true);
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  }
}

onTab.push((tab) => {
  if (tab === "friends") loadFriends();
  if (tab === "inbox") showInbox();
});
loadFriends().then(showInbox);
followInbox();
