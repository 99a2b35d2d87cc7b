// Checks a desired shadow document against the JSON Schema the fleet API serves
// (GET /api/v1/fleet/shadows/schema, pydantic's output for common.wire.live_config), as the
// operator types. Only the keywords that schema uses; the API checks again and is the
// authority. No DOM: node can import it.
function resolve(root, s) {
  return s.$ref ? root.$defs[s.$ref.split("/").pop()] : s;
}

function check(root, schema, v, path) {
  const s = resolve(root, schema);
  const field = path || "(document)";
  if (s.anyOf) {
    if (v === null && s.anyOf.some((alt) => alt.type === "null")) return null;
    let first = null;
    for (const alt of s.anyOf.filter((a) => a.type !== "null")) {
      const err = check(root, alt, v, path);
      if (!err) return null;
      first = first || err;
    }
    return first;
  }
  const kind = Array.isArray(v) ? "array" : v === null ? "null" : typeof v;
  switch (s.type) {
    case "object": {
      if (kind !== "object") return { field, error: "must be an object" };
      for (const [k, value] of Object.entries(v)) {
        const sub = s.properties && s.properties[k];
        const p = path ? `${path}.${k}` : k;
        if (!sub) {
          if (s.additionalProperties === false) return { field: p, error: "unknown field" };
          continue;
        }
        const err = check(root, sub, value, p);
        if (err) return err;
      }
      return null;
    }
    case "number":
      if (kind !== "number" || !Number.isFinite(v)) return { field, error: "must be a number" };
      break;
    case "integer":
      if (!Number.isInteger(v)) return { field, error: "must be a whole number" };
      break;
    case "boolean":
      if (kind !== "boolean") return { field, error: "must be true or false" };
      break;
    case "string":
      if (kind !== "string") return { field, error: "must be a string" };
      break;
    case "null":
      if (v !== null) return { field, error: "must be null" };
      break;
    default:
      break;
  }
  if (s.enum && !s.enum.includes(v)) return { field, error: `must be one of ${s.enum.join(", ")}` };
  if (s.minimum !== undefined && v < s.minimum) return { field, error: `must be at least ${s.minimum}` };
  if (s.maximum !== undefined && v > s.maximum) return { field, error: `must be at most ${s.maximum}` };
  if (s.maxLength !== undefined && v.length > s.maxLength) return { field, error: `at most ${s.maxLength} characters` };
  return null;
}

// The first error in `doc` as {field, error} (the field as a dotted path), or null.
export function firstError(schema, doc) {
  return check(schema, schema, doc, "");
}

// The JSON merge patch that turns `before` into `after` (top level; a removed key is null).
export function mergePatch(before, after) {
  const patch = {};
  for (const k of Object.keys(before || {})) if (!(k in after)) patch[k] = null;
  for (const [k, v] of Object.entries(after)) if (JSON.stringify(v) !== JSON.stringify((before || {})[k])) patch[k] = v;
  return patch;
}
