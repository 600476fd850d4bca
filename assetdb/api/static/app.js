// assetdb web page: search by text, by image and by filters; detail with "more like this".
// Plain DOM code, no build step, no network beyond this server. User data goes into the
// page through textContent only.

const PAGE_SIZE = 24;
const $ = (id) => document.getElementById(id);

const state = {
  mode: "browse",        // browse | text | image | similar
  q: "",
  file: null,            // the query image (mode "image")
  fileUrl: null,
  similar: null,         // {id, label} (mode "similar")
  offset: 0,
  count: 0,
  cap: null,
  busy: false,
  seq: 0,                // ignores answers to superseded requests
};

// ---------- filters: the form <-> the API's query parameters ----------

// The filters on the panel, from /api/filters: the server declares each filter once
// (its query parameter, and how the panel shows it), and the panel is built from that.
let FILTERS = [];

async function loadFilters() {
  FILTERS = (await api("/api/filters")).filter((f) => f.page)
    .map((f, i) => ({ ...f, at: i }))
    .sort((a, b) => a.page.order - b.page.order || a.at - b.at);
  buildFilterPanel();
}

function buildFilterPanel() {
  const box = $("filter-fields");
  const groups = new Map();
  for (const f of FILTERS) {
    const pf = f.page;
    let parent = box;
    if (pf.group) {
      if (!groups.has(pf.group)) {
        const fieldset = el("fieldset");
        fieldset.append(el("legend", null, pf.group));
        const inner = pf.widget === "date" ? el("div", "row2") : fieldset;
        if (inner !== fieldset) fieldset.append(inner);
        box.append(fieldset);
        groups.set(pf.group, inner);
      }
      parent = groups.get(pf.group);
    }
    if (pf.widget === "checkboxes") {
      for (const value of f.choices || []) {
        const label = el("label", "check");
        const input = el("input");
        input.type = "checkbox";
        input.name = f.param;
        input.value = value;
        label.append(input, document.createTextNode(` ${pf.choice_labels[value] || value}`));
        parent.append(label);
      }
      continue;
    }
    const label = el("label", pf.widget === "date" ? "field small" : "field", pf.label);
    const input = el(pf.widget === "lines" ? "textarea" : "input");
    input.name = f.param;
    if (pf.input_id) input.id = pf.input_id;
    if (pf.placeholder) input.placeholder = pf.placeholder;
    if (pf.widget === "lines") input.rows = 3;
    else if (pf.widget === "date") input.type = "date";
    else input.autocomplete = "off";
    label.title = f.help;
    label.append(input);
    if (pf.hint) label.append(el("span", "hint", pf.hint));
    parent.append(label);
  }
}

function filterParams() {
  const form = $("filter-form");
  const p = new URLSearchParams();
  for (const f of FILTERS) {
    const name = f.param;
    if (f.page.widget === "checkboxes") {
      form.querySelectorAll(`input[name="${name}"]:checked`).forEach((c) => p.append(name, c.value));
    } else if (f.page.widget === "lines") {
      for (const line of form.elements[name].value.split("\n")) {
        if (line.trim()) p.append(name, line.trim());
      }
    } else {
      const v = form.elements[name].value.trim();
      // An upper date bound counts its whole day.
      if (v) p.set(name, f.page.end_of_day ? `${v}T23:59:59` : v);
    }
  }
  const min = form.elements.min_similarity.value.trim();
  if (min) p.set("min_similarity", min);
  return p;
}

function activeFilterCount(p) {
  return new Set([...p.keys()]).size;
}

function restoreFromUrl() {
  const u = new URLSearchParams(location.search);
  const form = $("filter-form");
  $("q").value = u.get("q") || "";
  $("search-mode").value = ["semantic", "keyword"].includes(u.get("mode")) ? u.get("mode") : "hybrid";
  for (const f of FILTERS) {
    const name = f.param;
    if (f.page.widget === "checkboxes") {
      const values = u.getAll(name);
      form.querySelectorAll(`input[name="${name}"]`).forEach((c) => { c.checked = values.includes(c.value); });
    } else if (f.page.widget === "lines") {
      form.elements[name].value = u.getAll(name).join("\n");
    } else if (f.page.widget === "date") {
      form.elements[name].value = (u.get(name) || "").slice(0, 10);
    } else {
      form.elements[name].value = u.get(name) || "";
    }
  }
  form.elements.min_similarity.value = u.get("min_similarity") || "";
}

function syncUrl() {
  const p = filterParams();
  if (state.mode === "text") p.set("q", state.q);
  if (state.mode === "text" && $("search-mode").value !== "hybrid") p.set("mode", $("search-mode").value);
  const qs = p.toString();
  history.replaceState(null, "", qs ? `?${qs}` : location.pathname);
  const n = activeFilterCount(filterParams());
  $("filter-count").hidden = n === 0;
  $("filter-count").textContent = String(n);
}

// ---------- requests ----------

async function api(url, options = {}) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) {
    const message = body && body.error ? body.error : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return body;
}

function pageRequest(offset, limit) {
  const p = filterParams();
  p.set("offset", String(offset));
  p.set("limit", String(limit));
  if (state.mode === "text") {
    p.set("q", state.q);
    p.set("mode", $("search-mode").value);
    return api(`/api/search?${p}`);
  }
  if (state.mode === "image") {
    const body = new FormData();
    body.append("file", state.file, state.file.name || "query");
    return api(`/api/search/image?${p}`, { method: "POST", body });
  }
  if (state.mode === "similar") {
    return api(`/api/assets/${state.similar.id}/similar?${p}`);
  }
  p.delete("min_similarity"); // browsing has no similarity
  return api(`/api/assets?${p}`);
}

async function run(reset) {
  const seq = ++state.seq;
  if (reset) {
    state.offset = 0;
    state.count = 0;
    $("grid").replaceChildren();
    window.scrollTo(0, 0); // a new search starts at the top, where its query chip is
    syncUrl();
  }
  state.busy = true;
  setStatus("Searching…");
  $("error").hidden = true;
  $("load-more").disabled = true;
  document.body.classList.add("busy");
  try {
    const page = await pageRequest(state.offset, PAGE_SIZE);
    if (seq !== state.seq) return;
    state.cap = page.cap;
    for (const hit of page.results) $("grid").append(card(hit));
    state.count += page.results.length;
    state.offset += page.results.length;
    $("load-more").hidden = !page.has_more;
    const capped = !page.has_more && state.mode !== "browse" && state.count >= page.cap;
    $("cap-note").hidden = !capped;
    $("cap-note").textContent = capped ? `Showing the top ${page.cap} results; refine the query or filters to see others.` : "";
    if (state.count === 0) $("grid").append(emptyState());
    describe();
  } catch (err) {
    if (seq !== state.seq) return;
    $("error").textContent = err.message;
    $("error").hidden = false;
    setStatus("");
    $("load-more").hidden = true;
  } finally {
    if (seq === state.seq) {
      state.busy = false;
      $("load-more").disabled = false;
      document.body.classList.remove("busy");
    }
  }
}

// ---------- rendering ----------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function tagList(tags, onClick) {
  const ul = el("ul", "tags");
  for (const t of tags || []) {
    const li = el("li", null, t);
    if (onClick) {
      li.tabIndex = 0;
      li.title = `Filter by tag “${t}”`;
      li.classList.add("clickable");
      li.addEventListener("click", () => onClick(t));
      li.addEventListener("keydown", (e) => { if (e.key === "Enter") onClick(t); });
    }
    ul.append(li);
  }
  return ul;
}

function card(hit, { compact = false } = {}) {
  const li = el("li", "card");
  li.dataset.id = String(hit.id);
  const button = el("button");
  button.type = "button";
  button.setAttribute("aria-label", `Open ${hit.title || hit.name}`);
  const thumb = el("div", "thumb");
  const img = el("img");
  img.loading = "lazy";
  img.decoding = "async";
  img.alt = hit.title || hit.name;
  img.src = hit.thumbnail_url;
  thumb.append(img);
  if (hit.similarity !== null && hit.similarity !== undefined) {
    const score = el("span", "score", hit.similarity.toFixed(3));
    score.title = "Cosine similarity to the query";
    thumb.append(score);
  }
  if (hit.kind === "animation") thumb.append(el("span", "kind-badge", "GIF"));
  const moment = (hit.moments || [])[0];
  if (moment) {
    const badge = el("span", "kind-badge moment", momentLabel(moment));
    badge.title = "The best-matching moment";
    thumb.append(badge);
  } else if (hit.kind === "video") {
    thumb.append(el("span", "kind-badge", "video"));
  }
  const body = el("div", "card-body");
  body.append(el("p", "card-title", hit.title || hit.name));
  body.append(el("p", "card-sub", hit.name));
  if (hit.snippet) body.append(snippet(hit));
  if (!compact) body.append(tagList(hit.tags));
  button.append(thumb, body);
  button.addEventListener("click", () => openDetail(hit.id, moment));
  li.append(button);
  return li;
}

// The matching text under a thumbnail. The server marks matches with <mark>...</mark> in
// plain text: it is split here into text nodes and <mark> elements, never parsed as HTML.
function snippet(hit) {
  const p = el("p", "snippet");
  p.title = `Keyword rank ${hit.keyword_rank}` +
    (hit.similarity !== null && hit.similarity !== undefined ? `, similarity ${hit.similarity.toFixed(3)}` : "");
  const parts = hit.snippet.split(/(<mark>|<\/mark>)/);
  let marked = false;
  for (const part of parts) {
    if (part === "<mark>") { marked = true; continue; }
    if (part === "</mark>") { marked = false; continue; }
    if (part) p.append(marked ? el("mark", null, part) : document.createTextNode(part));
  }
  return p;
}

$("search-mode").addEventListener("change", () => { if (state.mode === "text") run(true); });

// "1:05" into a video, "p. 3" of a document.
function momentLabel(moment) {
  if (moment.seconds !== null && moment.seconds !== undefined) {
    const s = Math.floor(moment.seconds);
    const h = Math.floor(s / 3600);
    const mm = String(Math.floor((s % 3600) / 60));
    const ss = String(s % 60).padStart(2, "0");
    return h ? `${h}:${mm.padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
  }
  return moment.page ? `p. ${moment.page}` : "";
}

// A video plays in the page from the matching second (a #t= media fragment; the
// original is served with Range support). Anything else shows its thumbnail.
function showMedia(asset, moment) {
  const old = $("d-video");
  if (old) old.remove();
  const link = $("d-original");
  link.hidden = false;
  if (asset.kind !== "video" || !asset.mime || !asset.mime.startsWith("video/")) return;
  const video = el("video");
  video.id = "d-video";
  video.controls = true;
  video.preload = "metadata";
  video.poster = `${asset.thumbnail_url}?size=512`;
  const at = moment && moment.seconds ? `#t=${Number(moment.seconds).toFixed(1)}` : "";
  video.src = `${asset.original_url}${at}`;
  link.hidden = true;
  link.after(video);
}

function emptyState() {
  const li = el("li", "empty");
  li.append(el("p", null, state.mode === "browse"
    ? "No assets match these filters yet. Ingest some with `assetdb ingest`, or clear the filters."
    : "Nothing matches. Try other words, a lower minimum similarity, or fewer filters."));
  return li;
}

function setStatus(text) {
  $("status").textContent = text;
}

function describe() {
  const s = $("status");
  s.replaceChildren();
  const n = el("strong", null, `${state.count}${$("load-more").hidden ? "" : "+"}`);
  const what = {
    browse: " assets, newest first",
    text: ` results for “${state.q}”`,
    image: " results for your image",
    similar: ` assets similar to “${state.similar ? state.similar.label : ""}”`,
  }[state.mode];
  s.append(n, document.createTextNode(what));
  const filters = activeFilterCount(filterParams());
  if (filters) s.append(document.createTextNode(` · ${filters} filter${filters > 1 ? "s" : ""}`));
}

function showQueryChip() {
  const chip = $("query-chip");
  if (state.mode === "image") {
    $("query-image").src = state.fileUrl;
    $("query-image").hidden = false;
    $("query-label").textContent = `Image: ${state.file.name || "upload"}`;
  } else if (state.mode === "similar") {
    $("query-image").src = `/api/assets/${state.similar.id}/thumbnail`;
    $("query-image").hidden = false;
    $("query-label").textContent = `More like “${state.similar.label}”`;
  }
  chip.hidden = !(state.mode === "image" || state.mode === "similar");
  $("ask-image").hidden = !(ASK_ON && state.mode === "image");
  resetAsk($("ask-image"));
}

// ---------- detail ----------

function fact(dl, name, value) {
  if (value === null || value === undefined || value === "") return;
  dl.append(el("dt", null, name), el("dd", null, String(value)));
}

function formatBytes(n) {
  if (n == null) return null;
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function formatDate(iso) {
  return iso ? new Date(iso).toLocaleString() : null;
}

async function openDetail(id, moment = null) {
  const dialog = $("detail");
  let asset;
  try {
    asset = await api(`/api/assets/${id}`);
  } catch (err) {
    $("error").textContent = err.message;
    $("error").hidden = false;
    return;
  }
  dialog.dataset.id = String(asset.id);
  $("d-title").textContent = asset.title || asset.name;
  $("d-image").src = `${asset.thumbnail_url}?size=512`;
  $("d-image").alt = asset.title || asset.name;
  $("d-original").href = asset.original_url;
  $("d-open").href = asset.original_url;
  showMedia(asset, moment);
  $("d-description").textContent = asset.description || "";
  $("d-description").hidden = !asset.description;
  $("d-tags").replaceWith(Object.assign(tagList(asset.tags, filterByTag), { id: "d-tags" }));
  const facts = $("d-facts");
  facts.replaceChildren();
  fact(facts, "File", asset.name);
  fact(facts, "Type", `${asset.kind || "?"} · ${asset.mime || "?"}`);
  fact(facts, "Size", asset.width ? `${asset.width} × ${asset.height} px · ${formatBytes(asset.bytes)}` : null);
  fact(facts, "Captured", formatDate(asset.captured_at));
  fact(facts, "Added", formatDate(asset.created_at));
  fact(facts, "Status", asset.status + (asset.error ? `: ${asset.error}` : ""));
  fact(facts, "Location", asset.uri);
  fact(facts, "ID", asset.id);
  const meta = $("d-meta");
  meta.replaceChildren();
  const entries = Object.entries(asset.metadata || {});
  for (const [k, v] of entries) fact(meta, k, typeof v === "object" ? JSON.stringify(v) : v);
  $("d-meta-head").hidden = entries.length === 0;
  $("d-similar-all").dataset.label = asset.title || asset.name;
  $("d-ask").hidden = !ASK_ON;
  resetAsk($("d-ask"));
  const grid = $("d-similar");
  grid.replaceChildren(el("li", "hint", "Finding similar assets…"));
  if (!dialog.open) dialog.showModal();
  dialog.scrollTop = 0;
  try {
    const page = await api(`/api/assets/${asset.id}/similar?${filterParams()}&limit=12`);
    if (dialog.dataset.id !== String(asset.id)) return;
    grid.replaceChildren(...page.results.map((h) => card(h, { compact: true })));
    if (!page.results.length) grid.append(el("li", "hint", "No similar assets with these filters."));
  } catch (err) {
    grid.replaceChildren(el("li", "error", err.message));
  }
}

function filterByTag(tag) {
  const input = $("filter-form").elements.tag;
  const tags = input.value.split(",").map((t) => t.trim()).filter(Boolean);
  if (!tags.includes(tag)) tags.push(tag);
  input.value = tags.join(", ");
  $("detail").close();
  run(true);
}

// ---------- ask (POST /api/ask, when the server has it on) ----------

let ASK_ON = false;

function resetAsk(panel) {
  panel.querySelector(".ask-answer").replaceChildren();
  panel.querySelector(".ask-sources").replaceChildren();
  panel.querySelectorAll(".ask-note").forEach((n) => n.remove());
}

// The answer streams as NDJSON lines: sources, answer chunks, then done or error.
async function ask(panel, body) {
  const out = panel.querySelector(".ask-answer");
  const list = panel.querySelector(".ask-sources");
  const button = panel.querySelector("button[type=submit]");
  resetAsk(panel);
  out.classList.remove("error");
  out.textContent = "Asking…";
  button.disabled = true;
  let text = "";
  try {
    const response = await fetch(`/api/ask?${filterParams()}`, { method: "POST", body });
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try { message = (await response.json()).error || message; } catch { /* not JSON */ }
      throw new Error(message);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let at;
      while ((at = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, at).trim();
        buffered = buffered.slice(at + 1);
        if (!line) continue;
        const event = JSON.parse(line);
        if (event.event === "sources") {
          list.replaceChildren(...event.sources.map((h) => card(h, { compact: true })));
          if (event.note) list.before(el("p", "hint ask-note", event.note));
        } else if (event.event === "answer") {
          text += event.text;
          out.textContent = text;
        } else if (event.event === "error") {
          throw new Error(event.error);
        }
      }
    }
  } catch (err) {
    out.textContent = text ? `${text}\n\n` : "";
    out.append(el("strong", "error", text ? `[cut off] ${err.message}` : err.message));
  } finally {
    button.disabled = false;
  }
}

for (const panel of [$("ask-image"), $("d-ask")]) {
  panel.querySelector(".ask-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const body = new FormData();
    body.append("question", e.target.elements.question.value);
    if (panel.id === "d-ask") {
      body.append("asset_id", $("detail").dataset.id);
    } else if (state.file) {
      body.append("file", state.file, state.file.name || "query");
    }
    ask(panel, body);
  });
}

// ---------- modes ----------

function searchText(q) {
  state.q = q.trim();
  state.mode = state.q ? "text" : "browse";
  state.similar = null;
  clearFile();
  showQueryChip();
  run(true);
}

function searchImage(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) {
    $("error").textContent = `“${file.name}” is not an image.`;
    $("error").hidden = false;
    return;
  }
  clearFile();
  state.mode = "image";
  state.file = file;
  state.fileUrl = URL.createObjectURL(file);
  state.similar = null;
  $("q").value = "";
  showQueryChip();
  run(true);
}

function searchSimilar(id, label) {
  state.mode = "similar";
  state.similar = { id, label };
  clearFile();
  $("q").value = "";
  showQueryChip();
  run(true);
}

function clearFile() {
  if (state.fileUrl) URL.revokeObjectURL(state.fileUrl);
  state.file = null;
  state.fileUrl = null;
}

// ---------- wiring ----------

$("search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  searchText($("q").value);
});
$("filter-form").addEventListener("submit", (e) => {
  e.preventDefault();
  if (matchMedia("(max-width: 820px)").matches) toggleFilters(false);
  run(true);
});
$("filter-form").addEventListener("change", (e) => {
  // Checkboxes and dates apply at once; text fields on Enter or "Apply".
  if (e.target.type === "checkbox" || e.target.type === "date") run(true);
});
$("clear-filters").addEventListener("click", () => {
  $("filter-form").reset();
  run(true);
});
$("load-more").addEventListener("click", () => { if (!state.busy) run(false); });
$("image-button").addEventListener("click", () => $("file").click());
$("file").addEventListener("change", (e) => {
  searchImage(e.target.files[0]);
  e.target.value = "";
});
$("query-clear").addEventListener("click", () => searchText($("q").value));
$("d-close").addEventListener("click", () => $("detail").close());
$("detail").addEventListener("click", (e) => { if (e.target === $("detail")) $("detail").close(); });
$("d-similar-all").addEventListener("click", (e) => {
  const id = Number($("detail").dataset.id);
  $("detail").close();
  searchSimilar(id, e.currentTarget.dataset.label);
});

function toggleFilters(open) {
  const panel = $("filters");
  const next = open ?? !panel.classList.contains("open");
  panel.classList.toggle("open", next);
  $("filters-toggle").setAttribute("aria-expanded", String(next));
}
$("filters-toggle").addEventListener("click", () => toggleFilters());

// Drag and drop an image anywhere on the page.
let dragDepth = 0;
const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes("Files");
window.addEventListener("dragenter", (e) => {
  if (!hasFiles(e)) return;
  dragDepth += 1;
  $("drop-overlay").hidden = false;
});
window.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) $("drop-overlay").hidden = true;
});
window.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
window.addEventListener("drop", (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  dragDepth = 0;
  $("drop-overlay").hidden = true;
  searchImage(e.dataTransfer.files[0]);
});

api("/api/info").then((info) => { ASK_ON = Boolean(info.ask); }, () => {});

loadFilters().then(() => {
  restoreFromUrl();
  searchText($("q").value);
}, (err) => {
  $("error").textContent = err.message;
  $("error").hidden = false;
  setStatus("");
});
