// promptkit blind A/B review: keys 1 / 2 pick a side, t tie, s skip, u undo.
// The page knows only opaque tokens; variant names arrive with the answer to a vote.
"use strict";

(() => {
  const root = document.getElementById("review");
  if (!root) return;
  const experiment = root.dataset.experiment;
  const base = `/api/experiments/${encodeURIComponent(experiment)}`;
  const rater = root.dataset.rater || "me";
  const asRater = `rater=${encodeURIComponent(rater)}`;
  const el = (id) => document.getElementById(id);
  const sides = { left: root.querySelector('[data-side="left"]'), right: root.querySelector('[data-side="right"]') };
  const REVEAL_MS = 650;
  let current = root.dataset.pair ? { pair: root.dataset.pair, seed: Number(root.dataset.seed) } : null;
  let skipped = [];
  let busy = false;

  // toast() and api() come from app.js, which the base page loads first.

  function markSmall(image) {
    // Tiny test-model images are enlarged without smoothing, so their pixels stay honest.
    const apply = () => image.classList.toggle("small", image.naturalWidth > 0 && image.naturalWidth < 256);
    if (image.complete) apply(); else image.addEventListener("load", apply, { once: true });
  }

  function clearReveal() {
    for (const side of Object.values(sides)) {
      side.classList.remove("winner", "loser", "tied");
      side.querySelector(".reveal").textContent = "";
    }
  }

  function show(next) {
    el("voted").textContent = next.voted;
    el("total").textContent = next.total;
    el("progress").max = next.total || 1;
    el("progress").value = next.voted;
    clearReveal();
    if (next.done) {
      current = null;
      el("pair").hidden = true;
      el("done").hidden = false;
      root.dataset.state = "done";
      return;
    }
    current = { pair: next.pair, seed: next.seed };
    el("seed").textContent = next.seed;
    el("left-image").src = next.left.image_url;
    el("right-image").src = next.right.image_url;
    markSmall(el("left-image"));
    markSmall(el("right-image"));
    el("pair").hidden = false;
    el("done").hidden = true;
    root.dataset.state = "ready";
  }

  async function loadNext() {
    const query = [...skipped.map((token) => `skip=${encodeURIComponent(token)}`), asRater].join("&");
    show(await api("GET", `${base}/next-pair?${query}`));
  }

  async function showVerdicts() {
    const stats = await api("GET", `${base}/stats`);
    const list = el("verdicts");
    list.replaceChildren(...stats.pairs.map((pair) => {
      const item = document.createElement("li");
      const score = document.createElement("strong");
      score.textContent = `${pair.a} ${pair.wins_a} – ${pair.wins_b} ${pair.b}` + (pair.ties ? ` (${pair.ties} tie${pair.ties === 1 ? "" : "s"})` : "");
      const state = document.createElement("span");
      state.className = "state";
      state.dataset.state = pair.state;
      state.textContent = pair.verdict_text;
      const text = document.createElement("span");
      text.className = "muted";
      text.textContent = pair.verdict;
      item.append(score, state, text);
      return item;
    }));
    el("all-settled").hidden = !stats.pairs.every((pair) => pair.state !== "undecided");
    el("after").hidden = false;
  }

  async function vote(side) {
    if (busy || !current) return;
    busy = true;
    root.dataset.state = "voting";
    try {
      const cast = await api("POST", `${base}/votes`, { seed: current.seed, pair: current.pair, winner: side, rater });
      // The reveal: names on both images, the choice marked.
      sides.left.querySelector(".reveal").textContent = cast.left;
      sides.right.querySelector(".reveal").textContent = cast.right;
      for (const name of ["left", "right"]) {
        sides[name].classList.add(side === "tie" ? "tied" : side === name ? "winner" : "loser");
      }
      el("last-vote").textContent = side === "tie"
        ? `Seed ${cast.seed}: a tie between ${cast.left} (left) and ${cast.right} (right).`
        : `Seed ${cast.seed}: you chose ${cast.winner} (${side}) over ${side === "left" ? cast.right : cast.left}.`;
      skipped = skipped.filter((token) => token !== current.pair);
      root.dataset.state = "revealed";
      await showVerdicts();
      await new Promise((resolve) => setTimeout(resolve, REVEAL_MS));
      await loadNext();
    } catch (error) {
      toast(`Could not record the vote: ${error.message}`, "error");
      root.dataset.state = current ? "ready" : "done";
    } finally {
      busy = false;
    }
  }

  async function skip() {
    if (busy || !current) return;
    busy = true;
    const before = current.pair;
    skipped = [...skipped.filter((token) => token !== before), before].slice(-64);
    try {
      await loadNext();
      toast(current && current.pair === before ? "No other pair is waiting" : "Skipped; it comes back at the end");
    } catch (error) {
      toast(`Could not skip: ${error.message}`, "error");
    } finally {
      busy = false;
    }
  }

  async function undo() {
    if (busy) return;
    busy = true;
    try {
      const removed = await api("POST", `${base}/votes/undo`, { rater });
      toast(`Undid the vote on seed ${removed.seed}`);
      if (!el("after").hidden) await showVerdicts();
      el("last-vote").textContent = `Undone: the vote on seed ${removed.seed}.`;
      await loadNext();
    } catch (error) {
      toast(`Nothing undone: ${error.message}`, "error");
    } finally {
      busy = false;
    }
  }

  root.addEventListener("click", (event) => {
    const target = event.target.closest("[data-vote], [data-action]");
    if (!target) return;
    if (target.dataset.vote) vote(target.dataset.vote);
    else if (target.dataset.action === "skip") skip();
    else if (target.dataset.action === "undo") undo();
  });

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable]")) return;
    const actions = { 1: () => vote("left"), 2: () => vote("right"), t: () => vote("tie"), s: skip, u: undo };
    const action = actions[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  });

  markSmall(el("left-image"));
  markSmall(el("right-image"));
})();
