// The images test/vm/stdlib-layers.test.ts boots (the standard layers on
// `debian`, listed in test/vm/stdlib-images.json), built into the shared test
// cache ahead of that test. setup.sh --test starts this in the background at
// a low CPU priority once the tests' Debian repository is made, so the three
// builds (~8 min of two cores cold, the suite's largest item) use what CPU the
// suites leave idle instead of running alone when the test's turn comes. The
// test asks for the same builds: a build still running holds its lock in the
// cache and the test waits for it, then finds the image made; a build that
// failed here is done again there, and its error shown there.
//
// `debian` is bootstrapped here first, from the same repository the tests
// serve: a bootstrap is reproducible (src/image/bootstrap.ts), so the
// layer-build test's own bootstrap names the same image, and these builds are
// the ones stdlib-layers asks for. The repository is served on 127.0.0.1 for
// as long as this runs. Every line of output goes to stdout with the seconds
// since the start; the exit code says whether all went well.
//
//   SKIFF_HOME=… SKIFF_CACHE=.cache/test node scripts/test-std-images.mjs
import { spawn } from "node:child_process";
import { createReadStream, readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(root, "dist", "cli", "main.js");
const aptRepo = process.env.SKIFF_TEST_APT_REPO ?? join(root, ".cache", "apt-repo");
const images = JSON.parse(readFileSync(join(root, "test", "vm", "stdlib-images.json"), "utf8"));
const t0 = performance.now();

function say(what) {
  process.stdout.write(`${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s ${what}\n`);
}

/** The repository over HTTP on 127.0.0.1, as the tests serve it (apt asks for quoted names: pool/busybox_1%253a…). */
function serve(dir) {
  const server = createServer((req, res) => {
    const rel = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname));
    const st = rel.startsWith("/..") ? undefined : statSync(join(dir, rel), { throwIfNoEntry: false });
    if (st === undefined || !st.isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-length": st.size });
    if (req.method === "HEAD") res.end();
    else createReadStream(join(dir, rel)).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** The CLI with `args`, its output prefixed with `tag`; resolves to whether it exited 0. */
function skiff(tag, args) {
  say(`${tag}: skiff ${args.join(" ")}`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    for (const stream of [child.stdout, child.stderr]) {
      let rest = "";
      stream.on("data", (d) => {
        const lines = (rest + d.toString()).split("\n");
        rest = lines.pop();
        for (const line of lines) say(`${tag}: ${line}`);
      });
    }
    child.on("error", (err) => {
      say(`${tag}: ${err.message}`);
      resolve(false);
    });
    child.on("close", (code, signal) => {
      say(`${tag}: ${signal === null ? `exit ${code}` : `killed by ${signal}`}`);
      resolve(code === 0);
    });
  });
}

const server = await serve(aptRepo);
const mirror = `http://127.0.0.1:${server.address().port}/`;
let ok = await skiff("debian", ["image", "bootstrap", "--mirror", mirror]);
if (ok) {
  const built = await Promise.all(Object.entries(images).map(([vm, layers]) => skiff(vm, ["layer", "build", ...layers, "--apt-mirror", mirror])));
  ok = built.every(Boolean);
}
server.close();
say(ok ? "done" : "failed");
process.exitCode = ok ? 0 : 1;
