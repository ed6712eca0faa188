// After tsc: bundle the CLI with esbuild, so that starting `skiff` reads a
// few files instead of hundreds. Node's ESM loader pays for every module it
// loads (resolve, read, compile, link): `skiff ps` imports ~90 of skiff's
// modules and ~70 of its packages' (zod alone is 65), which cost more than
// the work ps does (docs/benchmarks.md, "CLI start").
//
// dist/cli/main.js (tsc's) becomes the bundle's entry and the modules it
// imports are inlined; what the CLI imports on demand (a verb's modules:
// the engine, images, SSH, ...) stays in chunks of its own under
// dist/cli-chunks/, loaded only when a verb needs it, as before. ssh2 stays
// a package of its own: it loads native crypto with require() and would
// fall back to slower JavaScript if bundled. The library (dist/index.js and
// the rest of dist/) is tsc's output, untouched.
//
// skiff's code never import()s a package itself: a CommonJS package (yaml,
// commander, tar-stream) made a chunk of its own has a default export only,
// where Node gives it named ones; the build fails on one. Import it in a
// skiff module and import() that (config/yaml-doc.ts: toYaml).
//
// dist/cli-chunks/modules.json says which modules each file holds, so a
// test can tell what a command loaded (test/unit/cli-start.test.ts).
//
// Without esbuild (a devDependency) the bundle is skipped with a note:
// tsc's dist/cli/main.js is the same program, slower to start.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, relative } from "node:path";

/** First line of a bundled entry: a second run must not bundle the bundle. */
const marker = "// skiff CLI, bundled by scripts/bundle-cli.mjs";

export async function bundleCli(root) {
  const dist = join(root, "dist");
  const entry = join(dist, "cli", "main.js");
  if (!existsSync(entry)) return "no dist/cli/main.js";
  if (readFileSync(entry, "utf8").includes(marker)) return "already bundled";
  let esbuild;
  try {
    esbuild = await import("esbuild");
  } catch {
    return "esbuild is not installed; the CLI is left unbundled (slower to start)";
  }
  const temp = join(dist, `.cli-bundle-${process.pid}`);
  rmSync(temp, { recursive: true, force: true });
  try {
    const { metafile } = await esbuild.build({
      absWorkingDir: root,
      metafile: true,
      entryPoints: [entry],
      outdir: temp,
      // Two levels under the package root like every dist/ file (package-root.ts finds it from either).
      entryNames: "cli/[name]",
      chunkNames: "cli-chunks/[name]-[hash]",
      bundle: true,
      splitting: true,
      format: "esm",
      platform: "node",
      target: "node20",
      external: ["ssh2"],
      // Function and class names as written, for stack traces of internal errors.
      keepNames: true,
      sourcemap: "linked",
      logLevel: "warning",
      // Bundled CommonJS packages (commander, yaml, tar-stream) require() Node's own modules.
      banner: { js: `${marker}\nimport { createRequire as __skiffCreateRequire } from "node:module";\nconst require = __skiffCreateRequire(import.meta.url);` },
      plugins: [englishOnlyZod, commanderWithoutChildProcess],
    });
    const packages = Object.values(metafile.outputs).flatMap((o) => (o.entryPoint?.includes("node_modules/") ? [o.entryPoint] : []));
    if (packages.length > 0) throw new Error(`import() of a package in skiff's code: ${packages.join(", ")}; import it in a skiff module and import() that`);
    rmSync(join(dist, "cli-chunks"), { recursive: true, force: true });
    renameSync(join(temp, "cli-chunks"), join(dist, "cli-chunks"));
    writeFileSync(join(dist, "cli-chunks", "modules.json"), `${JSON.stringify(modulesOf(metafile, relative(root, temp)), null, 1)}\n`);
    renameSync(join(temp, "cli", "main.js.map"), `${entry}.map`);
    renameSync(join(temp, "cli", "main.js"), entry);
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
  return undefined;
}

/**
 * zod's `z` re-exports `z.locales`, all 40 of its error-message languages
 * (200 KB, half of zod, parsed by every command that reads a record):
 * skiff's messages are English (zod sets it by default, from en.js
 * directly), and it never names a locale, so the bundle keeps English only.
 */
const englishOnlyZod = {
  name: "zod-english-only",
  setup(build) {
    build.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, () => ({ contents: 'export { default as en } from "./en.js";\n', loader: "js" }));
  },
};

/**
 * commander requires node:child_process at start, for subcommands that are
 * executables of their own (`git-foo`); skiff has none, and loading it costs
 * every command ~5 ms. The bundle defers it to a call that never comes. If
 * commander's first lines change, the file is left as it is (and a test of
 * what --version loads fails: test/unit/cli-start.test.ts).
 */
const commanderWithoutChildProcess = {
  name: "commander-without-child-process",
  setup(build) {
    build.onLoad({ filter: /[\\/]commander[\\/]lib[\\/]command\.js$/ }, async (args) => {
      const text = await readFile(args.path, "utf8");
      const eager = "const childProcess = require('node:child_process');";
      const lazy = "const childProcess = { spawn: (...args) => require('node:child_process').spawn(...args) };";
      return { contents: text.replace(eager, lazy), loader: "js" };
    });
  },
};

/**
 * Each output file (relative to dist/) → the modules in it: skiff's as their
 * path under dist/ ("engine/skiff.js"), packages' as "node_modules/NAME/…".
 */
function modulesOf(metafile, outdir) {
  const modules = {};
  for (const [output, info] of Object.entries(metafile.outputs)) {
    if (!output.endsWith(".js")) continue;
    modules[relative(outdir, output)] = Object.keys(info.inputs).map((input) =>
      input.includes("node_modules/") ? `node_modules/${input.slice(input.lastIndexOf("node_modules/") + "node_modules/".length)}` : relative("dist", input),
    );
  }
  return modules;
}
