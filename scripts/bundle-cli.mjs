// After tsc: bundle the CLI with rollup, so that starting `skiff` reads a
// few files instead of hundreds. Node's ESM loader pays for every module it
// loads (resolve, read, compile, link: ~1 ms a file here), and `skiff ps`
// imports ~90 of skiff's modules and ~70 of its packages' (zod alone is 65),
// which cost more than the work ps does (docs/benchmarks.md, "CLI start").
//
// dist/cli/main.js (tsc's) becomes the bundle's entry and the modules it
// imports are inlined; what the CLI imports on demand (a verb's modules:
// the engine, images, SSH, ...) stays in chunks of its own under
// dist/cli-chunks/, loaded only when a verb needs it, as before. ssh2 stays
// a package of its own: it loads native crypto with require() and would
// fall back to slower JavaScript if bundled. The library (dist/index.js and
// the rest of dist/) is tsc's output, untouched.
//
// Why rollup and not esbuild (used here until 2026-12-05): both split the
// code by which lazily imported modules reach it, but rollup makes far
// fewer chunks of it: `ps -a` loads 20 files instead of 54 and
// `run --rm base true` 54 instead of 98, 20–30 ms less each
// (docs/benchmarks.md, "CLI start"). rollup and its plugins come with
// vitest anyway.
//
// dist/cli-chunks/modules.json says which modules each file holds, so a
// test can tell what a command loaded (test/unit/cli-start.test.ts).
//
// Without rollup (a devDependency) the bundle is skipped with a note:
// tsc's dist/cli/main.js is the same program, slower to start.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import { join, relative } from "node:path";

/** First line of a bundled entry: a second run must not bundle the bundle (`//!`: a comment the minifier keeps). */
const marker = "//! skiff CLI, bundled by scripts/bundle-cli.mjs";

const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

export async function bundleCli(root) {
  const dist = join(root, "dist");
  const entry = join(dist, "cli", "main.js");
  if (!existsSync(entry)) return "no dist/cli/main.js";
  if (readFileSync(entry, "utf8").includes(marker)) return "already bundled";
  let rollup, commonjs, nodeResolve, json;
  try {
    ({ rollup } = await import("rollup"));
    ({ default: commonjs } = await import("@rollup/plugin-commonjs"));
    ({ nodeResolve } = await import("@rollup/plugin-node-resolve"));
    ({ default: json } = await import("@rollup/plugin-json"));
  } catch {
    return "rollup is not installed; the CLI is left unbundled (slower to start)";
  }
  const temp = join(dist, `.cli-bundle-${process.pid}`);
  rmSync(temp, { recursive: true, force: true });
  try {
    const build = await rollup({
      input: entry,
      external: (id) => builtins.has(id) || id === "ssh2" || id.startsWith("ssh2/"),
      plugins: [englishOnlyZod, commanderWithoutChildProcess, nodeResolve({ exportConditions: ["node"], preferBuiltins: true }), commonjs(), json(), await withoutComments()],
      onwarn(warning, warn) {
        // Cycles between skiff's modules are fine in ES modules; `this` at a CommonJS package's top is what commonjs() handles.
        if (warning.code === "CIRCULAR_DEPENDENCY" || warning.code === "THIS_IS_UNDEFINED") return;
        warn(warning);
      },
    });
    const { output } = await build.write({
      dir: temp,
      format: "es",
      // Two levels under the package root like every dist/ file (package-root.ts finds it from either).
      entryFileNames: "cli/[name].js",
      chunkFileNames: "cli-chunks/[name]-[hash].js",
      sourcemap: true,
      banner: (chunk) => (chunk.isEntry ? marker : ""),
    });
    await build.close();
    const packages = output.flatMap((o) => (o.type === "chunk" && o.isDynamicEntry && o.facadeModuleId?.includes("/node_modules/") ? [o.facadeModuleId] : []));
    if (packages.length > 0) throw new Error(`import() of a package in skiff's code: ${packages.join(", ")}; import it in a skiff module and import() that`);
    rmSync(join(dist, "cli-chunks"), { recursive: true, force: true });
    renameSync(join(temp, "cli-chunks"), join(dist, "cli-chunks"));
    writeFileSync(join(dist, "cli-chunks", "modules.json"), `${JSON.stringify(modulesOf(output, dist), null, 1)}\n`);
    renameSync(join(temp, "cli", "main.js.map"), `${entry}.map`);
    renameSync(join(temp, "cli", "main.js"), entry);
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
  return undefined;
}

/**
 * Every chunk without its comments and blank space (esbuild's transform, which
 * renames nothing): skiff's modules are half doc comments, and Node reads,
 * decodes and scans each byte of a chunk before it runs it. `ps` loads
 * 556 KB of chunks this way, 285 KB without (docs/benchmarks.md, "CLI
 * start"). Names stay, so stack traces and `err.name` read as before; the
 * source maps map to the sources. Without esbuild (it comes with vitest) the
 * chunks are left as they are.
 */
async function withoutComments() {
  let transform;
  try {
    ({ transform } = await import("esbuild"));
  } catch {
    return { name: "without-comments" };
  }
  return {
    name: "without-comments",
    async renderChunk(code) {
      const out = await transform(code, { format: "esm", minifyWhitespace: true, minifySyntax: true, target: "node20", sourcemap: true, legalComments: "inline" });
      return { code: out.code, map: out.map };
    },
  };
}

/**
 * zod's `z` re-exports `z.locales`, all 40 of its error-message languages
 * (200 KB, half of zod, parsed by every command that reads a record):
 * skiff's messages are English (zod sets it by default, from en.js
 * directly), and it never names a locale, so the bundle keeps English only.
 */
const englishOnlyZod = {
  name: "zod-english-only",
  load(id) {
    return /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/.test(id) ? 'export { default as en } from "./en.js";\n' : null;
  },
};

/**
 * commander requires node:child_process at start, for subcommands that are
 * executables of their own (`git-foo`); skiff has none, and loading it costs
 * every command ~5 ms. The bundle defers it to a call that never comes
 * (process.getBuiltinModule: a require() commonjs() would hoist to the
 * top). If commander's first lines change, the file is left as it is (and a
 * test of what --version loads fails: test/unit/cli-start.test.ts).
 */
const commanderWithoutChildProcess = {
  name: "commander-without-child-process",
  async load(id) {
    if (!/[\\/]commander[\\/]lib[\\/]command\.js$/.test(id)) return null;
    const text = await readFile(id, "utf8");
    const eager = "const childProcess = require('node:child_process');";
    const lazy = "const childProcess = { spawn: (...args) => process.getBuiltinModule('node:child_process').spawn(...args) };";
    return text.replace(eager, lazy);
  },
};

/**
 * Each output file (relative to dist/) → the modules in it: skiff's as their
 * path under dist/ ("engine/skiff.js"), packages' as "node_modules/NAME/…";
 * rollup's own helpers (ids starting with \0) are left out.
 */
function modulesOf(output, dist) {
  const modules = {};
  for (const o of output) {
    if (o.type !== "chunk") continue;
    modules[o.fileName] = Object.keys(o.modules).flatMap((id) => {
      if (id.startsWith("\0")) return [];
      const path = id.split("?")[0];
      const at = path.lastIndexOf("node_modules/");
      return [at >= 0 ? path.slice(at) : relative(dist, path)];
    });
  }
  return modules;
}
