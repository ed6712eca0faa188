// Prints every package named in layers/*/layer.yml (the standard library),
// one a line, sorted: what the tests' loopback Debian repository must hold.
import { readdirSync, readFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

const layers = join(dirname(fileURLToPath(import.meta.url)), "..", "layers");
const names = new Set();
for (const entry of existsSync(layers) ? readdirSync(layers) : []) {
  const file = join(layers, entry, "layer.yml");
  if (!existsSync(file)) continue;
  const doc = parse(readFileSync(file, "utf8")) ?? {};
  for (const pkg of doc.packages ?? []) names.add(String(pkg));
}
process.stdout.write([...names].sort().map((n) => `${n}\n`).join(""));
