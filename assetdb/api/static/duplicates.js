// The near-duplicates view: groups side by side (GET /api/duplicates), keeper marks
// (PUT /api/duplicates/keeper/{id}, with the API token when the server has one).
"use strict";

const $ = (id) => document.getElementById(id);

function headers() {
  const token = $("token").value || sessionStorage.getItem("assetdb-token") || "";
  if ($("token").value) sessionStorage.setItem("assetdb-token", $("token").value);
  return token ? { Authorization: "Bearer " + token } : {};
}

function bytes(n) {
  if (n == null) return "";
  return n >= 1048576 ? (n / 1048576).toFixed(1) + " MB" : Math.round(n / 1024) + " KB";
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function member(m) {
  const card = el("figure", { class: "dup-member" + (m.keeper ? " keeper" : ""),
                              "data-id": String(m.id) });
  card.append(el("img", { src: m.thumbnail_url, alt: m.title || "asset " + m.id,
                          loading: "lazy" }));
  const caption = el("figcaption", {});
  caption.append(el("div", {}, m.keeper ? el("span", { class: "badge" },
    m.marked_keeper ? "keeper (marked)" : "keeper") : "similarity " + m.similarity.toFixed(3)));
  caption.append(el("div", {}, `${m.width}×${m.height} · ${bytes(m.bytes)} · id ${m.id}`));
  if (m.hidden) caption.append(el("div", { class: "hidden-note" }, "hidden from searches"));
  caption.append(el("div", { class: "uri" }, m.uri));
  if (!m.keeper) {
    const button = el("button", { type: "button", class: "ghost mark" }, "Keep this one");
    button.addEventListener("click", () => markKeeper(m.id));
    caption.append(button);
  }
  card.append(caption);
  return card;
}

async function load() {
  const params = new URLSearchParams(location.search);
  if ($("threshold").value) params.set("threshold", $("threshold").value);
  else params.delete("threshold");
  params.set("semantic", $("semantic").checked ? "true" : "false");
  $("dup-status").textContent = "Loading…";
  const response = await fetch("/api/duplicates?" + params.toString(), { headers: headers() });
  const body = await response.json();
  if (!response.ok) {
    $("dup-status").textContent = body.error || response.statusText;
    return;
  }
  const groups = $("groups");
  groups.replaceChildren();
  for (const g of body.groups) {
    const section = el("section", { class: "dup-group" });
    section.append(el("h2", {}, `${g.size} assets · keeper ${g.keeper_id}`));
    section.append(el("div", { class: "dup-members" }, ...g.members.map(member)));
    groups.append(section);
  }
  let status = `${body.groups.length} groups, ${body.duplicates} duplicates among ` +
               `${body.assets} assets`;
  if (body.unscanned) status += ` (${body.unscanned} not looked at yet: run assetdb duplicates)`;
  $("dup-status").textContent = status;
}

async function markKeeper(id) {
  const response = await fetch("/api/duplicates/keeper/" + id,
                               { method: "PUT", headers: headers() });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    $("dup-status").textContent = "Could not mark the keeper: " + (body.error || response.status);
    return;
  }
  await load();
}

$("dup-form").addEventListener("submit", (event) => { event.preventDefault(); load(); });
load();
