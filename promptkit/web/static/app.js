// promptkit review page: keyboard rating, starring, copy buttons, a lightbox.
// Plain JavaScript, no build step. Changes go through the JSON API under /api/.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
const starsText = (n) => "★".repeat(n) + "☆".repeat(5 - n);

let toastTimer = null;
function toast(message, kind = "ok") {
  const box = $("#toast");
  if (!box) return;
  box.textContent = message;
  box.className = `toast show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.className = "toast"; }, 2200);
}

async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? { Accept: "application/json" } : { "Content-Type": "application/json", Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const detail = data && typeof data.detail === "string" ? data.detail : `${response.status} ${response.statusText}`;
    throw new Error(detail);
  }
  return data;
}

async function copyText(text) {
  // The async clipboard needs a secure context (127.0.0.1 and localhost are); else fall back.
  if (navigator.clipboard && window.isSecureContext) {
    try { await navigator.clipboard.writeText(text); return true; } catch (_) { /* fall back */ }
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.append(area);
  area.select();
  let copied = false;
  try { copied = document.execCommand("copy"); } catch (_) { copied = false; }
  area.remove();
  return copied;
}

// -- rating images ---------------------------------------------------------

const shots = () => $$(".shot");
const lightbox = $("#lightbox");
let lightboxShot = null;

function showStars(shot, stars) {
  shot.dataset.stars = String(stars);
  $$(".rate", shot).forEach((button) => button.classList.toggle("on", Number(button.dataset.stars) <= stars));
  if (lightboxShot === shot) $(".rating-readout", lightbox).textContent = stars ? starsText(stars) : "not rated";
  shot.classList.remove("just-rated");
  void shot.offsetWidth; // restart the animation
  shot.classList.add("just-rated");
}

async function rate(shot, stars) {
  const id = shot.dataset.generationId;
  try {
    await api("POST", `/api/generations/${id}/ratings`, { stars });
    showStars(shot, stars);
    toast(`Image #${id} rated ${starsText(stars)}`);
  } catch (error) {
    toast(`Could not rate image #${id}: ${error.message}`, "error");
  }
}

function move(shot, step) {
  const all = shots();
  const next = all[all.indexOf(shot) + step];
  if (!next) return shot;
  if (lightboxShot) openLightbox(next); else next.focus();
  return next;
}

function columns() {
  const all = shots();
  if (all.length < 2) return 1;
  const top = all[0].offsetTop;
  const count = all.findIndex((shot) => shot.offsetTop !== top);
  return count === -1 ? all.length : count;
}

function openLightbox(shot) {
  if (!lightbox) return;
  lightboxShot = shot;
  $("img", lightbox).src = shot.dataset.full;
  $("img", lightbox).alt = $("img", shot).alt;
  $(".caption", lightbox).textContent = `#${shot.dataset.generationId} · ${$(".seed", shot).textContent}`;
  const stars = Number(shot.dataset.stars);
  $(".rating-readout", lightbox).textContent = stars ? starsText(stars) : "not rated";
  if (!lightbox.open) lightbox.showModal();
}

if (lightbox) {
  lightbox.addEventListener("close", () => {
    const shot = lightboxShot;
    lightboxShot = null;
    if (shot) shot.focus();
  });
  lightbox.addEventListener("click", (event) => { if (event.target === lightbox) lightbox.close(); });
}

for (const shot of shots()) {
  shot.addEventListener("click", (event) => {
    const button = event.target.closest("button.rate");
    if (button) { rate(shot, Number(button.dataset.stars)); return; }
    if (event.target.closest("button, a")) return;
    if (document.activeElement === shot) openLightbox(shot); else shot.focus();
  });
  shot.addEventListener("dblclick", (event) => { if (!event.target.closest("button, a")) openLightbox(shot); });
}

// -- copy buttons ----------------------------------------------------------

document.addEventListener("click", async (event) => {
  const params = event.target.closest(".copy-params");
  const plain = event.target.closest(".copy-text");
  if (!params && !plain) return;
  let text = "";
  let what = "text";
  if (plain) {
    text = ($("#" + plain.dataset.copyFrom) || {}).textContent || "";
    what = plain.dataset.copyFrom.startsWith("negative") ? "negative prompt" : "positive prompt";
  } else {
    const id = params.closest(".shot").dataset.generationId;
    try {
      const generation = await api("GET", `/api/generations/${id}`);
      text = generation.parameters || "";
    } catch (error) {
      toast(`Could not read image #${id}: ${error.message}`, "error");
      return;
    }
    what = "A1111 parameters";
    if (!text) { toast(`Image #${id} carries no parameters text`, "error"); return; }
  }
  if (await copyText(text.trim())) toast(`Copied the ${what}`);
  else toast("Copying was refused by the browser; select the text instead", "error");
});

// -- starring a prompt -----------------------------------------------------

const starButton = $(".star-toggle");

function showStarred(starred) {
  starButton.setAttribute("aria-pressed", starred ? "true" : "false");
  $(".icon", starButton).textContent = starred ? "★" : "☆";
  $(".label", starButton).textContent = starred ? "Starred" : "Star";
}

async function toggleStar() {
  const starred = starButton.getAttribute("aria-pressed") !== "true";
  try {
    const prompt = await api("POST", `/api/prompts/${starButton.dataset.promptId}/star`, { starred });
    showStarred(prompt.starred);
    toast(prompt.starred ? "Starred" : "Star removed");
  } catch (error) {
    toast(`Could not change the star: ${error.message}`, "error");
  }
}

if (starButton) starButton.addEventListener("click", toggleStar);

// -- keyboard --------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  const typing = event.target.closest && event.target.closest("input, textarea, select, [contenteditable]");
  if (typing) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  if (event.key === "/") {
    const search = $(".search input");
    if (search) { event.preventDefault(); search.focus(); search.select(); }
    return;
  }
  if (event.key === "s" && starButton) { event.preventDefault(); toggleStar(); return; }
  const shot = lightboxShot || (event.target.closest && event.target.closest(".shot"));
  if (!shot) return;
  if (/^[1-5]$/.test(event.key)) { event.preventDefault(); rate(shot, Number(event.key)); return; }
  const steps = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns() };
  if (event.key in steps && !(lightboxShot && Math.abs(steps[event.key]) !== 1)) {
    event.preventDefault();
    move(shot, steps[event.key]);
    return;
  }
  if (event.key === "Enter" && !lightboxShot && event.target === shot) { event.preventDefault(); openLightbox(shot); }
});
