/**
 * The layering rule (docs/architecture.md, "Layers"), checked by
 * `node scripts/test.mjs` (its "layering" suite) with dependency-cruiser:
 *
 * - no circular dependencies among skiff's own modules;
 * - the front ends (src/cli, src/project, and the servers and clients over
 *   the library: src/server, src/api, src/mcp, src/sdk) reach the library only through
 *   its public API: src/index.ts, and src/pure.ts, the part of it that
 *   loads no engine (what a command imports before it knows it needs one);
 * - the library never imports a front end (src/config reads two leaves of
 *   src/project: ProjectSpec's types and the names of a project's objects).
 *
 * Type-only imports count: a type from the inside is a door too.
 */

/** Front-end imports of library internals not yet behind the public API: each one to be moved, then deleted here. */
const notYetBehindTheDoor = [
  {
    from: "src/cli/settings-schema.ts",
    to: ["src/config/yaml-doc.ts", "src/config/zod-error.ts"],
    why: "the settings file is read with the project files' YAML reader and error places, synchronously (tests call parseSettings); the door offers them only lazily, since yaml must not load with the library",
  },
];

/** Front ends: programs over the library. They may use each other (the CLI starts the server and the MCP server; MCP drives projects). */
const frontEnds = "^src/(cli|project|server|api|mcp|sdk)/";

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "a cycle makes two modules one; break it with an interface or by moving what both need. Type-only imports may close a cycle: they are erased at compile time",
      from: { path: "^src/" },
      to: { circular: true, viaOnly: { dependencyTypesNot: ["type-only", "type-import"] } },
    },
    {
      name: "front-ends-use-the-public-api",
      severity: "error",
      comment: "the front ends import the library through src/index.ts (or src/pure.ts) only",
      from: { path: frontEnds, pathNot: notYetBehindTheDoor.map((e) => `^${e.from}$`) },
      to: { path: "^src/", pathNot: [frontEnds, "^src/index[.]ts$", "^src/pure[.]ts$"] },
    },
    ...notYetBehindTheDoor.map((e) => ({
      name: "front-ends-use-the-public-api",
      severity: "error",
      comment: `allowed for now: ${e.why}`,
      from: { path: `^${e.from}$` },
      to: { path: "^src/", pathNot: [frontEnds, "^src/index[.]ts$", "^src/pure[.]ts$", ...e.to.map((t) => `^${t}$`)] },
    })),
    {
      name: "library-never-imports-the-cli",
      severity: "error",
      comment: "the library must not know its front ends",
      from: { path: "^src/", pathNot: frontEnds },
      to: { path: "^src/(cli|server|api|mcp|sdk)/" },
    },
    {
      name: "library-never-imports-the-project-layer",
      severity: "error",
      comment: "src/project (compose's verbs) is a front end over the library, like the CLI. The project-file loaders (src/config) read two leaves of it: the ProjectSpec type they produce, and the names a project gives its VMs, networks and volumes (to check them)",
      from: { path: "^src/", pathNot: frontEnds },
      to: { path: "^src/project/", pathNot: "^src/project/(types|names)[.]ts$" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    exclude: { path: "[.]test[.]ts$" },
  },
};
