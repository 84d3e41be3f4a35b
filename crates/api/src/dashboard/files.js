// The Files page: store files and folders on the network (a file picker,
// a folder picker, or drag and drop, with progress), each capability as
// text and as a QR code; and get a file back by its capability, with
// progress, saved by the browser. Uses app.js and dashboard.js.
"use strict";

// K/N for a network too small for the node's default code (3/5), or "".
let suggestedShares = "";

// Uploads run one after the other, so that each gets the node's whole
// attention and the progress bars mean something.
let uploadQueue = Promise.resolve();

function sharesQuery() {
  const shares = $("put-shares").value.trim() || suggestedShares;
  return shares ? "&shares=" + encodeURIComponent(shares) : "";
}

// A row of the uploads list: a title, a progress bar and a sentence; the
// capability box replaces it once stored.
function uploadRow(title, total) {
  const row = el("div", "upload");
  const head = el("div", "upload-head");
  head.append(el("strong", "", title), el("span", "muted", " " + bytes(total)));
  const bar = progressBar();
  const state = el("div", "muted small", "waiting…");
  row.append(head, bar.element, state);
  $("uploads").prepend(row);
  return {
    row,
    progress(done) {
      bar.set(done, total);
      state.textContent = done >= total
        ? "sent; encoding and placing the shares on peers…"
        : "sending " + bytes(done) + " of " + bytes(total);
    },
    done(box) {
      row.replaceWith(box);
    },
    failed(sentence) {
      row.classList.add("failed");
      state.className = "bad small";
      state.textContent = sentence;
    },
  };
}

// Stores one file; its capability box.
function putFile(file) {
  const row = uploadRow(file.name, file.size);
  uploadQueue = uploadQueue.then(async () => {
    row.progress(0);
    try {
      const stored = await upload(
        "/v1/put?name=" + encodeURIComponent(file.name) + sharesQuery(),
        file,
        (sent) => row.progress(sent),
      );
      row.done(capabilityBox(file.name, stored.capability,
        bytes(stored.size) + " · " + stored.shares + " shares on " + stored.peers + " peers"));
    } catch (error) {
      row.failed(file.name + " was not stored: " + error.message);
    }
  });
  return uploadQueue;
}

// Stores a folder given as [{path: "top/sub/name", file}], as `kith put
// DIR` does: every file, then each folder's listing, deepest first, and
// the top folder's listing last; its capability box.
function putFolder(items) {
  const top = items[0].path.split("/")[0];
  const total = items.reduce((sum, item) => sum + item.file.size, 0);
  const row = uploadRow(top + "/ (" + items.length + " files)", total);
  uploadQueue = uploadQueue.then(async () => {
    // The tree: a folder is {folders: Map(name → folder), files: [[name, file]]}.
    const tree = { folders: new Map(), files: [] };
    for (const item of items) {
      const parts = item.path.split("/").slice(1);
      let folder = tree;
      for (const part of parts.slice(0, -1)) {
        if (!folder.folders.has(part)) folder.folders.set(part, { folders: new Map(), files: [] });
        folder = folder.folders.get(part);
      }
      folder.files.push([parts[parts.length - 1], item.file]);
    }
    let before = 0; // bytes of the files already stored
    row.progress(0);
    const store = async (folder) => {
      const entries = [];
      for (const [name, sub] of folder.folders) {
        const stored = await store(sub);
        entries.push({ name, capability: stored.capability, size: stored.size });
      }
      for (const [name, file] of folder.files) {
        const stored = await upload(
          "/v1/put?name=" + encodeURIComponent(name) + sharesQuery(),
          file,
          (sent) => row.progress(before + sent),
        );
        before += file.size;
        entries.push({ name, capability: stored.capability, size: stored.size });
      }
      return api("/v1/folder?" + sharesQuery().slice(1), { entries });
    };
    try {
      const stored = await store(tree);
      row.done(capabilityBox(top + "/", stored.capability,
        items.length + " files, " + bytes(stored.size) + " · " + stored.shares + " shares", true));
    } catch (error) {
      row.failed(top + "/ was not stored: " + error.message);
    }
  });
  return uploadQueue;
}

$("file-input").addEventListener("change", (event) => {
  for (const file of event.target.files) putFile(file);
  event.target.value = "";
});

$("folder-input").addEventListener("change", (event) => {
  const items = Array.from(event.target.files, (file) => ({ path: file.webkitRelativePath, file }));
  if (items.length > 0) putFolder(items);
  event.target.value = "";
});

// Drag and drop: files are stored one by one, a folder as a folder.
const drop = $("drop");
for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    drop.classList.add("over");
  });
}
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", async (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const entries = Array.from(event.dataTransfer.items || [])
    .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null));
  if (entries.length === 0 || entries.some((entry) => entry === null)) {
    for (const file of event.dataTransfer.files) putFile(file);
    return;
  }
  for (const entry of entries) {
    if (entry.isFile) {
      entry.file(putFile);
    } else if (entry.isDirectory) {
      const items = await walkEntry(entry, entry.name);
      if (items.length > 0) putFolder(items);
    }
  }
});

// Every file under a dropped folder, as [{path, file}].
async function walkEntry(folder, path) {
  const children = [];
  const reader = folder.createReader();
  // readEntries gives a batch at a time, then an empty one.
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) break;
    children.push(...batch);
  }
  const items = [];
  for (const child of children) {
    const childPath = path + "/" + child.name;
    if (child.isFile) {
      const file = await new Promise((resolve, reject) => child.file(resolve, reject));
      items.push({ path: childPath, file });
    } else if (child.isDirectory) {
      items.push(...await walkEntry(child, childPath));
    }
  }
  return items;
}

// ---- Get by capability --------------------------------------------------

function getState(text, bad) {
  $("get-state").textContent = text;
  $("get-state").className = bad ? "bad" : "muted";
}

// Downloads the file `capability` names (CAP or CAP/PATH) and saves it.
async function download(capability, fallbackName) {
  const bar = $("get-progress");
  bar.hidden = false;
  const fill = bar.firstElementChild;
  fill.style.width = "0";
  getState("fetching…");
  try {
    const file = await fetchFile("/v1/get?cap=" + encodeURIComponent(capability), (got, total) => {
      fill.style.width = total > 0 ? (100 * got / total).toFixed(1) + "%" : "0";
      getState("fetching " + bytes(got) + (total ? " of " + bytes(total) : ""));
    });
    const name = file.name || fallbackName || "kith-download";
    saveBlob(file.blob, name);
    fill.style.width = "100%";
    getState("saved " + name + " (" + file.size.toLocaleString("en") + " bytes, verified)");
    $("get-state").dataset.size = String(file.size);
  } catch (error) {
    getState("Not fetched: " + error.message, true);
  }
}

// The Download button: a file is fetched at once; a folder shows its
// entries, each with its own button.
async function getByCapability() {
  const capability = $("get-cap").value.trim();
  $("get-listing").replaceChildren();
  delete $("get-state").dataset.size;
  if (!capability) {
    getState("Paste a capability (kith:…) first.", true);
    return;
  }
  $("get-button").disabled = true;
  try {
    const resolved = await api("/v1/resolve?cap=" + encodeURIComponent(capability));
    if (resolved.kind === "folder") {
      const listing = await api("/v1/ls?cap=" + encodeURIComponent(capability));
      getState("a folder of " + listing.entries.length + " entries: get each one below");
      $("get-listing").replaceChildren(...listing.entries.map((entry) => {
        const row = el("div", "entry");
        const path = capability + "/" + entry.name;
        const button = el("button", "link", entry.kind === "folder" ? entry.name + "/" : entry.name);
        button.type = "button";
        button.addEventListener("click", () => {
          if (entry.kind === "folder") {
            $("get-cap").value = path;
            getByCapability();
          } else {
            download(path, entry.name);
          }
        });
        row.append(button, el("span", "muted", " " + bytes(entry.size)));
        return row;
      }));
      $("get-progress").hidden = true;
    } else {
      await download(capability);
    }
  } catch (error) {
    getState("Not fetched: " + error.message, true);
  } finally {
    $("get-button").disabled = false;
  }
}

$("get-button").addEventListener("click", getByCapability);
$("get-cap").addEventListener("keydown", (event) => {
  if (event.key === "Enter") getByCapability();
});

// The shares field's hint: the default code needs five nodes (this one
// and four peers); with fewer, what fits is suggested, and used when the
// field is left empty.
onStatus.push((status) => {
  const nodes = status.peers + 1;
  suggestedShares = nodes >= 5 ? "" : nodes >= 3 ? "2/" + nodes : "1/" + nodes;
  $("put-shares").placeholder = suggestedShares || "3/5";
});
