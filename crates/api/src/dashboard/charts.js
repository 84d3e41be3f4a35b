// Live charts on Home: peers connected and bytes served per second over
// the last few minutes, as sparklines drawn on a <canvas>, from the
// refreshes dashboard.js makes every 2 s.
"use strict";

const SAMPLES = 90; // 3 minutes at one sample per refresh
const peerSamples = [];
const servedSamples = [];
let lastServed = null; // [time in ms, bytes served]

function sample(list, value) {
  list.push(value);
  if (list.length > SAMPLES) list.shift();
}

// Draws `values` as a line with a filled area, scaled to the largest.
function sparkline(canvas, values) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  if (values.length < 2) return;
  const top = Math.max(1, ...values);
  const x = (i) => (i / (SAMPLES - 1)) * width;
  const y = (value) => height - 2 - (value / top) * (height - 4);
  const start = SAMPLES - values.length;
  context.beginPath();
  values.forEach((value, i) => {
    if (i === 0) context.moveTo(x(start + i), y(value));
    else context.lineTo(x(start + i), y(value));
  });
  const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#2b6cb0";
  context.strokeStyle = accent;
  context.lineWidth = 1.5;
  context.stroke();
  context.lineTo(x(SAMPLES - 1), height);
  context.lineTo(x(start), height);
  context.closePath();
  context.globalAlpha = 0.15;
  context.fillStyle = accent;
  context.fill();
  context.globalAlpha = 1;
}

onStatus.push((status) => {
  sample(peerSamples, status.peers);
  const now = Date.now();
  if (lastServed) {
    const seconds = Math.max(0.001, (now - lastServed[0]) / 1000);
    const rate = Math.max(0, status.bytes_served - lastServed[1]) / seconds;
    sample(servedSamples, rate);
    $("served-rate").textContent = bytes(Math.round(rate)) + "/s";
  }
  lastServed = [now, status.bytes_served];
  $("peers-chart").title = "peers: " + peerSamples.join(", ");
  sparkline($("peers-chart"), peerSamples);
  sparkline($("served-chart"), servedSamples);
});
