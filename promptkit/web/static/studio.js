// promptkit studio: live prompt preview, Generate on the warm engine, iterate, A/B.
// Plain JavaScript, no build step; uses $, $$, api and toast from app.js (loaded first).
"use strict";

(() => {
  const form = $("#studio");
  if (!form) return;
  const PREVIEW_DELAY_MS = 180;
  const POLL_MS = 250;
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value; else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  };
  const terms = (text) => text.split(",").map((t) => t.trim()).filter(Boolean);
  let extrasValues = {};
  try { extrasValues = JSON.parse($("#extras").dataset.values || "{}") || {}; } catch (_) { extrasValues = {}; }

  // -- reading the form ----------------------------------------------------

  function readExtras() {
    const extras = {};
    for (const input of $$("#extras input")) extras[input.name] = input.value;
    return extras;
  }

  // Until a template is picked, the family's default one is used (sentences for T5 and LLM families).
  let templateChosen = Boolean(form.dataset.promptId);

  function optionalNumber(selector) {
    const input = $(selector);
    if (!input || input.closest("[hidden]") || input.value.trim() === "") return null;
    const value = Number(input.value);
    return Number.isFinite(value) ? value : null;
  }

  function collect() {
    return {
      template: templateChosen ? $("#field-template").value : null,
      model: $("#setting-model").value.trim() || null,
      family: $("#setting-family").value || null,
      cfg: optionalNumber("#setting-cfg"),
      true_cfg: optionalNumber("#setting-true-cfg"),
      fields: {
        subject: $("#field-subject").value,
        action: $("#field-action").value,
        environment: $("#field-environment").value,
        style: terms($("#field-style").value),
        quality: terms($("#field-quality").value),
        negative: terms($("#field-negative").value),
        negative_preset: $("#field-negative-preset").value,
        extras: readExtras(),
        weights: readWeights(),
      },
    };
  }

  // Weights saved with the prompt (`build --weight`) on fields without an input here are kept.
  let savedWeights = {};
  try { savedWeights = JSON.parse($("#studio").dataset.weights || "{}") || {}; } catch (_) { savedWeights = {}; }

  function readWeights() {
    const weights = { ...savedWeights };
    for (const input of $$("input.weight")) {
      const value = Number(input.value);
      if (input.value.trim() === "" || value === 1) delete weights[input.dataset.field];
      else weights[input.dataset.field] = value;
    }
    return weights;
  }

  function seedList() {
    const text = $("#setting-seeds").value.trim();
    const parts = text ? text.split(/[\s,]+/).filter(Boolean) : [];
    const seeds = parts.map((part) => {
      if (!/^\d+$/.test(part)) throw new Error(`seed ${JSON.stringify(part)} is not a whole number`);
      return Number(part);
    });
    if (!seeds.length) throw new Error("the seed list is empty; add a seed or press New seeds");
    return seeds;
  }

  function settings() {
    const size = $("#setting-size").value.trim();
    let width = null;
    let height = null;
    if (size) {
      const match = /^(\d+)\s*[x×]\s*(\d+)$/i.exec(size);
      if (!match) throw new Error(`size ${JSON.stringify(size)} is not WIDTHxHEIGHT, e.g. 512x512`);
      width = Number(match[1]);
      height = Number(match[2]);
    }
    return { sampler: $("#setting-sampler").value, steps: Number($("#setting-steps").value),
             cfg: Number($("#setting-cfg").value), width, height, true_cfg: optionalNumber("#setting-true-cfg") };
  }

  // -- template extras -----------------------------------------------------

  function showExtras() {
    const option = $("#field-template").selectedOptions[0];
    const names = option && option.dataset.fields ? option.dataset.fields.split(",").filter(Boolean) : [];
    const box = $("#extras");
    Object.assign(extrasValues, readExtras());
    box.replaceChildren();
    for (const name of names) {
      const id = `extra-${name}`;
      const input = el("input", { id, name, type: "text", maxlength: "4000", placeholder: `${name} for this template` });
      input.value = extrasValues[name] || "";
      box.append(el("div", { class: "extra" }, el("label", { for: id }, name), input));
    }
  }

  // -- preset chips ----------------------------------------------------------

  function syncChips(input) {
    const chosen = new Set(terms(input.value));
    for (const chip of $$(`.chips[data-for="${input.id}"] .chip`)) {
      const on = chosen.has(chip.dataset.preset);
      chip.classList.toggle("on", on);
      chip.setAttribute("aria-pressed", on ? "true" : "false");
    }
  }

  form.addEventListener("click", (event) => {
    const chip = event.target.closest(".chip");
    if (!chip) return;
    const input = $("#" + chip.closest(".chips").dataset.for);
    const chosen = terms(input.value);
    const at = chosen.indexOf(chip.dataset.preset);
    if (at === -1) chosen.push(chip.dataset.preset); else chosen.splice(at, 1);
    input.value = chosen.join(", ");
    syncChips(input);
    schedulePreview();
  });

  // -- live preview ------------------------------------------------------------

  let previewTimer = null;
  let previewSerial = 0;

  function schedulePreview() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(runPreview, PREVIEW_DELAY_MS);
  }

  function showPrompt(box, text, overflow, limit) {
    box.replaceChildren();
    if (!text) { box.append(el("span", { class: "muted" }, "(empty)")); return; }
    const at = overflow ? text.lastIndexOf(overflow) : -1;
    if (at < 0) { box.append(text); return; }
    box.append(text.slice(0, at));
    box.append(el("mark", { class: "past-window", title: `Past the ${limit || 75}-token window` }, text.slice(at)));
  }

  // Tokens per text encoder of the family (CLIP-L 17/75 · T5 ~22/511), each with its first cut word.
  function showEncoders(which, windows) {
    const list = $(`#${which}-encoders`);
    list.replaceChildren(...(windows || []).map((w) => {
      const over = w.count > w.limit;
      const text = `${w.label} ${w.exact ? "" : "~"}${w.count} / ${w.limit}` + (over ? ` · cut from “${w.first_cut}”` : "");
      return el("li", { class: `encoder-window${over ? " over" : ""}`, "data-encoder": w.encoder,
                        title: `${w.tokenizer}${w.note ? "; " + w.note : ""}` }, text);
    }));
  }

  // Switching family moves CFG and steps to the new family's defaults, unless you had changed them; a
  // new page for a flow-matching model starts from its defaults (an SD page keeps the form's own).
  let shownFamily;
  let familyDefaults = null;

  function adoptDefaults(family) {
    const key = family ? family.key : null;
    if (shownFamily === key) return false;
    const first = shownFamily === undefined;
    shownFamily = key;
    const cfg = $("#setting-cfg");
    const steps = $("#setting-steps");
    const current = { cfg: Number(cfg.value), steps: Number(steps.value) };
    const before = familyDefaults || current;
    const keep = !family || (first && (!family.samplers || form.dataset.promptId));
    familyDefaults = keep ? current : { cfg: family.default_guidance, steps: family.default_steps };
    if (keep) return false;
    if (current.steps === before.steps) steps.value = family.default_steps;
    if (current.cfg !== before.cfg || current.cfg === family.default_guidance) return false;
    cfg.value = family.default_guidance;
    return true;
  }

  // The page follows the family: its guidance label, true CFG, the samplers it takes, the negative prompt.
  function applyFamily(family) {
    if (adoptDefaults(family)) schedulePreview(); // the negative prompt may be read at the new guidance
    $("#label-cfg").textContent = family ? family.guidance_label : "CFG";
    $("#true-cfg-setting").hidden = !(family && family.true_cfg);
    const ignored = family ? family.negative_ignored : null;
    $("#negative-block").hidden = Boolean(ignored);
    $("#negative-fields").hidden = Boolean(ignored);
    const note = $("#negative-ignored");
    note.hidden = !ignored;
    note.textContent = ignored ? `Negative prompt ignored: ${ignored}.` : "";
    const allowed = family && family.samplers ? new Set(family.samplers) : null;
    const sampler = $("#setting-sampler");
    for (const option of sampler.options) option.disabled = Boolean(allowed) && !allowed.has(option.value);
    if (allowed && !allowed.has(sampler.value)) sampler.value = family.samplers[0];
    $("#family-line").textContent = family
      ? `${family.label}: ${family.encoders.map((e) => `${e.label} ${e.window}`).join(" + ")} tokens · `
        + `${family.guidance_label} ${family.default_guidance} · ${family.default_steps} steps`
      : "";
  }

  function showTokens(which, report) {
    const label = $(`#${which}-tokens`);
    const bar = $(`#${which}-bar`);
    if (!report) { label.textContent = ""; bar.style.width = "0"; return; }
    const over = report.count > report.limit;
    label.textContent = `${report.count} / ${report.limit} tokens${over ? ` · ${report.count - report.limit} past the window` : ""}`;
    label.classList.toggle("over", over);
    bar.style.width = `${Math.min(100, (100 * report.count) / report.limit)}%`;
    bar.classList.toggle("over", over);
  }

  async function runPreview() {
    const serial = ++previewSerial;
    let result;
    try {
      result = await api("POST", "/api/studio/preview", collect());
    } catch (error) {
      if (serial === previewSerial) showError(error.message);
      return;
    }
    if (serial !== previewSerial) return; // a newer keystroke's answer is on its way
    showError(result.error);
    if (result.error) return;
    const lint = result.lint || {};
    if (!templateChosen && result.template && result.template !== $("#field-template").value) {
      $("#field-template").value = result.template;
      showExtras();
    }
    applyFamily(result.family);
    showPrompt($("#rendered-positive"), result.positive, lint.positive && lint.positive.overflow, lint.positive && lint.positive.limit);
    showPrompt($("#rendered-negative"), result.negative, lint.negative && lint.negative.overflow, lint.negative && lint.negative.limit);
    showTokens("positive", lint.positive);
    showTokens("negative", lint.negative);
    showEncoders("positive", lint.encoders && lint.encoders.positive);
    showEncoders("negative", lint.encoders && lint.encoders.negative);
    const list = $("#lint");
    list.replaceChildren(...(lint.findings || []).map((finding) => el("li", { class: `finding ${finding.level}` },
      el("span", { class: "level" }, finding.level), " ", finding.message)));
  }

  function showError(message) {
    const line = $("#template-error");
    line.hidden = !message;
    line.textContent = message || "";
    line.title = message || "";
    form.classList.toggle("has-error", Boolean(message));
    // Point at the template's field the message names, when the form has one.
    const missing = message ? /'([A-Za-z_]\w*)' is undefined/.exec(message) : null;
    for (const input of $$("#extras input")) input.classList.toggle("missing", Boolean(missing) && input.name === missing[1]);
  }

  form.addEventListener("input", (event) => {
    if (event.target.closest(".settings")) return;
    if (event.target.closest(".chips") === null && event.target.id && $(`.chips[data-for="${event.target.id}"]`)) {
      syncChips(event.target);
    }
    schedulePreview();
  });
  $("#field-template").addEventListener("change", () => { templateChosen = true; showExtras(); schedulePreview(); });
  $("#setting-model").addEventListener("change", schedulePreview);
  for (const id of ["#setting-family", "#setting-cfg", "#setting-true-cfg"]) $(id).addEventListener("change", schedulePreview);

  // -- seeds -------------------------------------------------------------------

  $("#new-seeds").addEventListener("click", () => {
    const drawn = new Uint32Array(4);
    crypto.getRandomValues(drawn);
    $("#setting-seeds").value = Array.from(drawn).join(", ");
    toast("New seeds drawn: the next Generate is a fresh start, not a comparison");
  });

  // -- generating ----------------------------------------------------------------

  let running = false;
  let lastCompare = null;
  let lastRun = null; // the model and settings the compared images were made with

  function setProgress(done, total, text) {
    const box = $("#progress");
    box.hidden = false;
    $(".progress-bar span", box).style.width = `${total ? (100 * done) / total : 0}%`;
    $(".progress-text", box).textContent = text;
  }

  function figure(image, caption) {
    return el("figure", { class: "studio-shot", "data-generation-id": String(image.id), "data-seed": String(image.seed) },
      el("a", { href: image.url, target: "_blank", rel: "noopener" },
        el("img", { src: image.url, alt: `Image ${image.id}, seed ${image.seed}` })),
      el("figcaption", {}, caption, image.made ? el("span", { class: "made muted" }, image.made) : ""));
  }

  function showImages(job) {
    const grid = $("#images");
    for (const image of job.images) {
      if ($(`.studio-shot[data-generation-id="${image.id}"]`, grid)) continue;
      grid.append(figure(image, el("span", {}, `seed ${image.seed} `, el("span", { class: "muted" }, `#${image.id}`))));
    }
  }

  function markedTerms(text, marked, kind) {
    const box = el("p", { class: "prompt-box small" });
    terms(text).forEach((term, index) => {
      if (index) box.append(", ");
      box.append(marked.has(term) ? el(kind, {}, term) : term);
    });
    return box;
  }

  function fieldText(value) {
    if (value === null || value === undefined || value === "") return "(empty)";
    if (Array.isArray(value)) return value.length ? value.join(", ") : "(none)";
    if (typeof value === "object") return Object.entries(value).map(([k, v]) => `${k}=${v}`).join(", ") || "(none)";
    return String(value);
  }

  function showComparison(comparison) {
    lastCompare = comparison;
    const diff = $("#diff");
    const changed = Object.entries(comparison.fields).map(([name, change]) => el("li", {},
      el("span", { class: "field-name" }, name), " ",
      el("del", {}, fieldText(change.from)), " → ", el("ins", {}, fieldText(change.to))));
    const added = new Set(comparison.positive.added);
    const removed = new Set(comparison.positive.removed);
    diff.replaceChildren(
      el("ul", { class: "changed-fields", "aria-label": "Changed fields" }, ...changed),
      el("div", { class: "diff-prompts" },
        el("div", {}, el("h3", {}, "A · parent ", el("a", { href: `/prompts/${comparison.parent.id}` }, `#${comparison.parent.id}`)),
          markedTerms(comparison.parent.positive, removed, "del")),
        el("div", {}, el("h3", {}, "B · child ", el("a", { href: `/prompts/${comparison.child.id}` }, `#${comparison.child.id}`)),
          markedTerms(comparison.child.positive, added, "ins"))));
    const pairs = $("#pairs");
    pairs.replaceChildren(...comparison.pairs.map((pair) => el("div", { class: "compare-pair", "data-seed": String(pair.seed) },
      el("div", { class: "compare-pair-seed" }, `seed ${pair.seed}`),
      pair.parent ? figure(pair.parent, "A · parent") : el("div", { class: "missing" }, "parent not generated on this seed"),
      pair.child ? figure(pair.child, "B · child") : el("div", { class: "missing" }, "not generated yet"))));
    $("#compare").hidden = false;
  }

  async function poll(jobId) {
    let job;
    try {
      job = await api("GET", `/api/studio/jobs/${jobId}`);
    } catch (error) {
      finish(`Lost the job: ${error.message}`, "error");
      return;
    }
    showImages(job);
    if (job.state === "failed") { finish(`Generation failed: ${job.error}`, "error"); return; }
    if (job.state !== "done") {
      setProgress(job.done, job.total, job.done ? `${job.done} of ${job.total} images · ${job.seconds} s` : `Generating ${job.total} images …`);
      setTimeout(() => poll(jobId), POLL_MS);
      return;
    }
    setProgress(job.total, job.total, `${job.total} images in ${job.seconds} s`);
    if (job.comparison) showComparison(job.comparison); else $("#compare").hidden = true;
    for (const note of job.notes || []) toast(note, "error");
    finish(null);
  }

  function finish(message, kind) {
    running = false;
    $("#generate").disabled = false;
    $("#generate").textContent = "Generate";
    if (message) { toast(message, kind); setProgress(0, 1, message); }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (running) return;
    let body;
    try {
      body = { ...collect(), seeds: seedList(), settings: settings(), parent_id: Number(form.dataset.promptId) || null };
    } catch (error) { toast(error.message, "error"); return; }
    if (!body.model) { toast("Choose a model first (or start the page with promptkit serve --model M)", "error"); $("#setting-model").focus(); return; }
    running = true;
    $("#generate").disabled = true;
    $("#generate").textContent = "Generating…";
    setProgress(0, body.seeds.length, `Saving the prompt and queueing ${body.seeds.length} images …`);
    let queued;
    try {
      queued = await api("POST", "/api/studio/generate", body);
    } catch (error) { finish(`Could not generate: ${error.message}`, "error"); return; }
    form.dataset.promptId = String(queued.prompt_id);
    $("#matrix").hidden = false;
    $("#matrix-base").textContent = `on prompt #${queued.prompt_id}`;
    lastRun = { model: body.model, settings: body.settings };
    $("#images").replaceChildren();
    $("#results").hidden = false;
    const link = $("#results-prompt");
    link.href = queued.prompt_url;
    link.textContent = `prompt #${queued.prompt_id}${queued.created ? " (new)" : ""}`;
    $("#results-hint").textContent = queued.parent_id
      ? `Iterated from prompt #${queued.parent_id} on the same seeds; see the side-by-side below.`
      : "Change a field and press Generate again to compare on the same seeds.";
    poll(queued.job_id);
  });

  // -- A/B ---------------------------------------------------------------------------

  $("#make-ab").addEventListener("click", async () => {
    if (!lastCompare) return;
    const button = $("#make-ab");
    button.disabled = true;
    button.textContent = "Creating …";
    try {
      const made = await api("POST", "/api/studio/experiments", {
        parent_id: lastCompare.parent.id, child_id: lastCompare.child.id, model: lastRun.model,
        seeds: lastCompare.pairs.map((pair) => pair.seed), settings: lastRun.settings,
      });
      toast(`Experiment ${made.name} created`);
      window.location.assign(made.review_url);
    } catch (error) {
      toast(`Could not make the A/B test: ${error.message}`, "error");
      button.disabled = false;
      button.textContent = "Make A/B test";
    }
  });

  // -- prompt matrix -------------------------------------------------------------------

  $("#make-matrix").addEventListener("click", async () => {
    const promptId = Number(form.dataset.promptId);
    const terms = $("#matrix-terms").value.split("\n").map((line) => line.trim()).filter(Boolean);
    if (!promptId) { toast("Generate first: the matrix starts from a saved prompt", "error"); return; }
    if (!terms.length) { toast("Write at least one term, one per line", "error"); $("#matrix-terms").focus(); return; }
    let body;
    try {
      body = { prompt_id: promptId, terms, pairs_only: $("#matrix-pairs-only").checked,
               model: $("#setting-model").value.trim(), seeds: seedList(), settings: settings() };
    } catch (error) { toast(error.message, "error"); return; }
    if (!body.model) { toast("Choose a model first", "error"); $("#setting-model").focus(); return; }
    const button = $("#make-matrix");
    button.disabled = true;
    button.textContent = "Generating the matrix …";
    try {
      const made = await api("POST", "/api/studio/matrix", body);
      toast(`Prompt matrix ${made.name}: ${made.generated} images`);
      window.location.assign(made.review_url);
    } catch (error) {
      toast(`Could not make the prompt matrix: ${error.message}`, "error");
      button.disabled = false;
      button.textContent = "Make prompt matrix";
    }
  });

  // -- start -------------------------------------------------------------------------

  showExtras();
  for (const input of $$(".chips")) syncChips($("#" + input.dataset.for));
  runPreview();
})();
