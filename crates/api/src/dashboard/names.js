// The Names page's forms: publish a capability under this node's name (or
// a labelled one), and mirror a name or a capability. The tables of names
// and mirrors are drawn by dashboard.js on every refresh. Uses app.js and
// dashboard.js.
"use strict";

function say(id, text, bad) {
  $(id).textContent = text;
  $(id).className = bad ? "bad small" : "muted small";
}

async function publishName() {
  const capability = $("publish-cap").value.trim();
  const label = $("publish-label").value.trim();
  if (!capability) {
    say("publish-state", "Give the capability to publish (kith:…): store a file or folder on the Files page.", true);
    return;
  }
  $("publish-button").disabled = true;
  say("publish-state", "signing and storing the record on the closest peers…");
  try {
    const request = { capability };
    if (label) request.label = label;
    const published = await api("/v1/names/publish", request);
    say("publish-state", "published " + (label ? "“" + label + "” " : "") + "as " + published.name
      + " (sequence " + published.sequence + ", kept by " + published.stored_on + " of "
      + published.asked + " peers asked)");
    $("publish-state").dataset.name = published.name;
    await refresh();
  } catch (error) {
    say("publish-state", "Not published: " + error.message, true);
  } finally {
    $("publish-button").disabled = false;
  }
}

async function addMirror() {
  const target = $("mirror-target").value.trim();
  if (!target) {
    say("mirror-state", "Give a name or a capability to mirror.", true);
    return;
  }
  $("mirror-button").disabled = true;
  say("mirror-state", "making the first copy…");
  try {
    const mirror = await api("/v1/mirrors", { target });
    say("mirror-state", mirror.error
      ? "Mirroring " + target + ", but the first copy failed: " + mirror.error
      : "mirrored: " + mirror.files + " files, " + bytes(mirror.bytes), !!mirror.error);
    $("mirror-target").value = "";
    await refresh();
  } catch (error) {
    say("mirror-state", "Not mirrored: " + error.message, true);
  } finally {
    $("mirror-button").disabled = false;
  }
}

$("publish-button").addEventListener("click", publishName);
$("mirror-button").addEventListener("click", addMirror);
for (const [input, action] of [["publish-label", publishName], ["publish-cap", publishName], ["mirror-target", addMirror]]) {
  $(input).addEventListener("keydown", (event) => {
    if (event.key === "Enter") action();
  });
}
