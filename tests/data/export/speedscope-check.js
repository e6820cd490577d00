// Checks a speedscope file against the file-format-schema.json that the
// `speedscope` npm package ships (draft-07 subset the schema uses: $ref,
// anyOf, const, enum, type, properties, required, items), then the
// importer's own invariants: frame indices in range, one weight per
// sample. Usage: node speedscope-check.js SCHEMA FILE; prints "ok N
// profiles" or the first error and exits 1.
const fs = require("fs");
const [schemaPath, filePath] = process.argv.slice(2);
const schema = JSON.parse(fs.readFileSync(schemaPath, "utf8"));
const file = JSON.parse(fs.readFileSync(filePath, "utf8"));
function resolve(s) {
  while (s && s.$ref) s = s.$ref.split("/").slice(1).reduce((o, k) => o[k], schema);
  return s;
}
function type(v) {
  if (Array.isArray(v)) return "array";
  if (v === null) return "null";
  return typeof v;
}
function check(v, s, path) {
  s = resolve(s);
  if (!s) return null;
  if (s.anyOf) {
    const errs = s.anyOf.map((a) => check(v, a, path));
    return errs.some((e) => e === null) ? null : errs[0];
  }
  if (s.const !== undefined && v !== s.const) return `${path}: ${JSON.stringify(v)} is not ${JSON.stringify(s.const)}`;
  if (s.enum && !s.enum.includes(v)) return `${path}: ${JSON.stringify(v)} not in ${s.enum}`;
  if (s.type && type(v) !== s.type) return `${path}: ${type(v)} is not ${s.type}`;
  for (const r of s.required || []) if (!(r in v)) return `${path}: missing ${r}`;
  for (const [k, p] of Object.entries(s.properties || {})) {
    if (k in v) {
      const e = check(v[k], p, `${path}.${k}`);
      if (e) return e;
    }
  }
  if (s.items && Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const e = check(v[i], s.items, `${path}[${i}]`);
      if (e) return e;
    }
  }
  return null;
}
let err = check(file, schema.definitions["FileFormat.File"], "$");
const frames = file.shared ? file.shared.frames.length : 0;
for (const [i, p] of (file.profiles || []).entries()) {
  if (err) break;
  if (p.type !== "sampled") continue;
  if (p.samples.length !== p.weights.length) err = `profile ${i}: ${p.samples.length} samples, ${p.weights.length} weights`;
  for (const s of p.samples) for (const f of s) if (!(f >= 0 && f < frames)) err = `profile ${i}: frame ${f} out of range`;
  const total = p.weights.reduce((a, b) => a + b, 0);
  if (!err && p.endValue - p.startValue !== total) err = `profile ${i}: end - start ${p.endValue - p.startValue} != weights ${total}`;
}
if (err) {
  console.log(err);
  process.exit(1);
}
console.log(`ok ${file.profiles.length} profiles`);
