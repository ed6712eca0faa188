// The SDK in one script: a sandbox, commands with streaming output, files,
// a PTY, a background command, errors, and the end of it all.
//
//   npm run build && node examples/sdk/sandbox.mjs
//
// It uses skiff's home as the CLI does (SKIFF_HOME, or the default) and the
// built-in `base` image. With SKIFF_HOST (and SKIFF_TOKEN) set it runs the
// same against that `skiff serve` instead:
//
//   SKIFF_HOST=http://127.0.0.1:7070 SKIFF_TOKEN=$(skiff serve --print-token) node examples/sdk/sandbox.mjs
//
// `import from "skiff/sdk"` resolves to dist/sdk/. test/vm/sdk.test.ts runs
// tour() on its own sandbox, test/vm/sdk-remote.test.ts on one over serve.
import { pathToFileURL } from "node:url";
import { CommandExitError, Sandbox } from "skiff/sdk";

/** Everything but create and kill, on `sb`; `log` prints a line. */
export async function tour(sb, log = console.log) {
  // Output arrives in chunks as the guest writes it; this prints each line of a chunk with a prefix.
  const lines = (prefix) => (chunk) => chunk.split("\n").filter(Boolean).forEach((line) => log(`  [${prefix}] ${line}`));

  // A shell command line, its output streamed as it comes.
  const r = await sb.commands.run("echo hello from $(uname -s); echo to stderr >&2", {
    onStdout: lines("stdout"),
    onStderr: lines("stderr"),
  });
  log(`exit ${r.exitCode}`);

  // cwd, environment and user.
  const who = await sb.commands.run('echo "$GREETING from $(pwd) as $(id -un)"', { cwd: "/tmp", envs: { GREETING: "hi" }, user: "user" });
  log(who.stdout.trim());

  // A non-zero exit throws CommandExitError, with the result on it.
  try {
    await sb.commands.run("echo oops >&2; exit 3");
  } catch (err) {
    if (!(err instanceof CommandExitError)) throw err;
    log(`CommandExitError: exit ${err.exitCode}, stderr ${JSON.stringify(err.stderr)}`);
  }

  // Files: write (parents made), read back, list, exists, remove.
  await sb.files.write("/work/notes/hello.txt", "written by the SDK\n");
  await sb.files.write([
    { path: "/work/notes/a.bin", data: new Uint8Array([0, 1, 2, 255]) },
    { path: "/work/notes/b.txt", data: "bee" },
  ]);
  log(`read: ${JSON.stringify(await sb.files.read("/work/notes/hello.txt"))}`);
  log(`bytes: [${await sb.files.read("/work/notes/a.bin", { format: "bytes" })}]`);
  for (const e of await sb.files.list("/work/notes")) log(`  ${e.type.padEnd(4)} ${String(e.size ?? "").padStart(3)} ${e.path}`);
  await sb.files.makeDir("/work/empty");
  await sb.files.remove("/work/notes/b.txt");
  log(`exists b.txt: ${await sb.files.exists("/work/notes/b.txt")}, /work/empty: ${await sb.files.exists("/work/empty")}`);
  try {
    await sb.files.read("/nope");
  } catch (err) {
    log(`read /nope: ${err.code}`);
  }

  // A background command fed on stdin.
  const bg = await sb.commands.run("while read line; do echo \"got: $line\"; done; echo stdin closed", {
    background: true,
    stdin: true,
    onStdout: lines("bg"),
  });
  log(`background pid ${bg.pid}; running: ${(await sb.commands.list()).map((p) => p.pid).join(",")}`);
  await bg.sendStdin("one\n");
  await bg.sendStdin("two\n");
  bg.closeStdin();
  const bgResult = await bg.wait();
  log(`background exit ${bgResult.exitCode}, ${bgResult.stdout.split("\n").filter(Boolean).length} lines`);

  // A long one, killed.
  const sleeper = await sb.commands.run("sleep 600", { background: true, timeoutMs: 0 });
  log(`kill: ${await sleeper.kill()}`);
  await sleeper.wait().catch((err) => log(`sleeper: exit ${err.exitCode} (${err.error})`));

  // A PTY: a login shell on a terminal of 100x30, made 120x40.
  let screen = "";
  const term = await sb.pty.create({ cols: 100, rows: 30, onData: (d) => (screen += Buffer.from(d).toString()) });
  term.resize({ cols: 120, rows: 40 });
  await term.sendInput("stty size; echo $((6*7)); exit\n");
  await term.wait();
  log(`pty saw size ${/\b40 120\b/.test(screen) ? "40 120" : "?"} and ${screen.includes("42") ? "42" : "?"}`);

  const info = await sb.getInfo();
  log(`info: ${info.templateId}, ${info.memoryMB} MiB, ${info.state}, metadata ${JSON.stringify(info.metadata)}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const t0 = Date.now();
  const sb = await Sandbox.create({ image: "base", memory: 256, timeoutMs: 10 * 60_000, metadata: { example: "sdk" } });
  console.log(`created ${sb.sandboxId}${process.env.SKIFF_HOST ? ` on ${process.env.SKIFF_HOST}` : ""} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  try {
    await tour(sb);
  } finally {
    console.log(`killed: ${await sb.kill()}`);
  }
  console.log(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
