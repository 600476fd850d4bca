// Renders /openapi.json as a readable list of endpoints (FastAPI's own docs pages load
// their scripts from a CDN; this page needs nothing but this server).
const el = (tag, cls, text) => {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  if (text !== undefined) n.textContent = text;
  return n;
};

function typeOf(schema, spec) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.anyOf) return schema.anyOf.map((s) => typeOf(s, spec)).join(" | ");
  if (schema.type === "array") return `${typeOf(schema.items, spec)}[]`;
  return schema.type || "";
}

function bodyParams(op, spec) {
  const content = op.requestBody?.content || {};
  const media = Object.keys(content)[0];
  if (!media) return [];
  let schema = content[media].schema || {};
  if (schema.$ref) schema = spec.components.schemas[schema.$ref.split("/").pop()];
  return Object.entries(schema.properties || {}).map(([name, s]) => ({
    name, in: media.includes("multipart") ? "form" : "body",
    type: typeOf(s, spec), required: (schema.required || []).includes(name),
    description: s.description || "",
  }));
}

const spec = await (await fetch("/openapi.json")).json();
document.getElementById("intro").textContent = `${spec.info.title} ${spec.info.version}: ${spec.info.summary || ""}`;
const root = document.getElementById("endpoints");
for (const [path, ops] of Object.entries(spec.paths)) {
  for (const [method, op] of Object.entries(ops)) {
    const box = el("section", "endpoint");
    const h = el("h2");
    h.append(el("span", `method ${method}`, method.toUpperCase()), el("span", "path", path),
      el("span", "hint", op.summary || ""));
    box.append(h);
    if (op.description) box.append(el("p", null, op.description));
    const params = (op.parameters || []).map((p) => ({
      name: p.name, in: p.in, type: typeOf(p.schema, spec), required: p.required,
      description: p.description || p.schema?.description || "",
    })).concat(bodyParams(op, spec));
    if (params.length) {
      const table = el("table", "params");
      const head = el("tr");
      for (const t of ["name", "in", "type", "description"]) head.append(el("th", null, t));
      table.append(head);
      for (const p of params) {
        const row = el("tr");
        row.append(el("td", null, p.name + (p.required ? " *" : "")), el("td", null, p.in),
          el("td", null, p.type), el("td", null, p.description));
        table.append(row);
      }
      box.append(table);
    }
    root.append(box);
  }
}
