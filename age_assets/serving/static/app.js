"use strict";

const BOX = "#ffd000";
const SHADOW = "rgba(0, 0, 0, 0.75)";

const drop = document.getElementById("drop");
const input = document.getElementById("file");
const statusLine = document.getElementById("status");
const errorLine = document.getElementById("error");
const result = document.getElementById("result");
const canvas = document.getElementById("canvas");
const summary = document.getElementById("summary");
const faceList = document.getElementById("faces");

let maxUploadBytes = null;
let latest = 0;

fetch("health")
  .then((response) => (response.ok ? response.json() : null))
  .then((health) => { if (health) maxUploadBytes = health.max_upload_bytes; })
  .catch(() => {});

const megabytes = (n) => `${+(n / 1e6).toPrecision(3)} MB`;
const percent = (p) => `${Math.round(p * 100)}%`;
// Whole years as the bucket edges count them (age_to_bucket rounds half to even): 2.5 is "age 2 · 0-2".
const wholeYears = (age) => { const r = Math.round(age); return r - age === 0.5 && r % 2 ? r - 1 : r; };
const faceLabel = (face) => `age ${wholeYears(face.age)} · ${face.bucket}${face.low_confidence ? " (unsure face)" : ""}`;

// The widest interval the export carries, e.g. "; 90%: 24-41 years".
function intervalText(face) {
  const keys = Object.keys(face.intervals || {}).sort((a, b) => b - a);
  if (!keys.length) return "";
  const { low, high } = face.intervals[keys[0]];
  return `; ${keys[0]}%: ${Math.round(low)}–${Math.round(high)} years`;
}

function reset() {
  errorLine.hidden = true;
  errorLine.textContent = "";
  result.hidden = true;
  faceList.replaceChildren();
}

function showError(message) {
  statusLine.textContent = "";
  errorLine.textContent = message;
  errorLine.hidden = false;
}

async function analyse(file) {
  const request = ++latest;
  reset();
  if (maxUploadBytes !== null && file.size > maxUploadBytes) {
    showError(`${file.name} is ${megabytes(file.size)}, over the ${megabytes(maxUploadBytes)} limit`);
    return;
  }
  statusLine.textContent = `Analysing ${file.name}…`;
  const form = new FormData();
  form.append("image", file);
  let response;
  let body;
  try {
    response = await fetch("predict", { method: "POST", body: form });
    body = await response.json();
  } catch (error) {
    if (request === latest) showError(`${file.name}: no answer from the server (${error.message})`);
    return;
  }
  if (request !== latest) return;
  if (!response.ok) {
    showError(body.error || `${file.name}: the server answered ${response.status}`);
    return;
  }
  statusLine.textContent = "";
  await show(file, body);
}

async function show(file, prediction) {
  const { width, height } = prediction;
  summary.textContent = `${prediction.message} in ${prediction.file} (${width} × ${height} pixels)`;
  for (const face of prediction.faces) {
    const item = document.createElement("li");
    const age = document.createElement("span");
    age.className = "age";
    age.textContent = faceLabel(face);
    const detail = document.createElement("span");
    detail.className = "detail";
    const sure = face.probabilities[face.bucket];
    const bucket = sure === undefined ? "" : `; ${percent(sure)} for ${face.bucket}`;
    detail.textContent = ` (${face.age.toFixed(1)} years${intervalText(face)}${bucket})`;
    item.append(age, detail);
    faceList.append(item);
  }
  result.hidden = false;
  await draw(file, prediction);
}

async function draw(file, prediction) {
  const { width, height, faces } = prediction;
  const fit = Math.min(1, result.clientWidth / width, (window.innerHeight * 0.7) / height);
  const ratio = window.devicePixelRatio || 1;
  canvas.style.width = `${Math.round(width * fit)}px`;
  canvas.width = Math.max(1, Math.round(width * fit * ratio));
  canvas.height = Math.max(1, Math.round(height * fit * ratio));
  const context = canvas.getContext("2d");
  const scale = canvas.width / width;
  try {
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
  } catch {
    context.fillStyle = "#dde2e5";
    context.fillRect(0, 0, canvas.width, canvas.height);
  }
  context.font = `600 ${14 * ratio}px system-ui, sans-serif`;
  context.textBaseline = "top";
  for (const face of faces) {
    const x = face.box.x * scale;
    const y = face.box.y * scale;
    const w = face.box.width * scale;
    const h = face.box.height * scale;
    context.lineWidth = 5 * ratio;
    context.strokeStyle = SHADOW;
    context.strokeRect(x, y, w, h);
    context.lineWidth = 3 * ratio;
    context.strokeStyle = BOX;
    context.strokeRect(x, y, w, h);
    const text = faceLabel(face);
    const textHeight = 20 * ratio;
    const textWidth = context.measureText(text).width + 10 * ratio;
    const top = y - textHeight - 3 * ratio >= 0 ? y - textHeight - 3 * ratio : y + 3 * ratio;
    const left = Math.min(Math.max(0, x), Math.max(0, canvas.width - textWidth));
    context.fillStyle = SHADOW;
    context.fillRect(left, top, textWidth, textHeight);
    context.fillStyle = BOX;
    context.fillText(text, left + 5 * ratio, top + 3 * ratio);
  }
  const described = faces.map((face, i) => `face ${i + 1}: ${faceLabel(face)}`).join("; ");
  canvas.setAttribute("aria-label", `${prediction.file}: ${described || prediction.message}`);
}

input.addEventListener("change", () => {
  if (input.files.length) analyse(input.files[0]);
  input.value = "";
});

for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
}
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const file = event.dataTransfer.files[0];
  if (file) analyse(file);
});
// A photo dropped beside the drop zone would otherwise replace the page.
for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());
