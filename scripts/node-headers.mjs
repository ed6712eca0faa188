// Where the running Node's C headers (node_api.h) are, for building the
// flock addon. Node from nodejs.org, nvm or NodeSource keeps them beside
// itself in <prefix>/include/node; Debian's libnode-dev in /usr/include/node.
// Run directly, prints the directory or exits 1 (./setup.sh asks this way).
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export function nodeIncludeDir() {
  const prefix = resolve(dirname(process.execPath), "..");
  const candidates = [join(prefix, "include", "node"), "/usr/include/node", "/usr/local/include/node"];
  return candidates.find((dir) => existsSync(join(dir, "node_api.h")));
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = nodeIncludeDir();
  if (dir === undefined) process.exit(1);
  console.log(dir);
}
