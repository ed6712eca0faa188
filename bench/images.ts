// Image benchmarks (run: npm run bench:images). Ratios against baselines
// measured in the same run:
//   A. pull + convert of a local-registry image of a few tens of MiB into a
//      bootable ext4, vs `skopeo copy` + `umoci unpack` + `mke2fs -d` of the
//      same image (goal <= 1.2x);
//   B. `skiff run --rm IMAGE true` with the image cached, vs the first run
//      (pull + convert + boot).
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { buildOciLayout, type TarEntry } from "../test/vm/oci-layout.js";
import { pushLayout, startRegistry } from "../test/vm/registry.js";

const root = join(import.meta.dirname, "..");
const cli = join(root, "dist", "cli", "main.js");
const runs = Number(process.env.RUNS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const time = (fn: () => void) => {
  const t = performance.now();
  fn();
  return performance.now() - t;
};

const work = mkdtempSync("/tmp/skib-");
const registry = await startRegistry();
try {
  // ~40 MiB over 4 layers, incompressible data plus a busybox userland so it boots.
  const blob = (mib: number) => randomBytes(mib * 1024 * 1024);
  const layers: { entries: TarEntry[] }[] = [
    {
      entries: [
        { type: "file", path: "bin/busybox", content: readFileSync("/bin/busybox"), mode: 0o755 },
        { type: "symlink", path: "bin/sh", target: "busybox" },
        { type: "symlink", path: "bin/true", target: "busybox" },
        { type: "file", path: "etc/passwd", content: "root:x:0:0:root:/root:/bin/sh\n" },
      ],
    },
    ...[10, 10, 18].map((mib, i) => ({ entries: [{ type: "file", path: `data/blob${i}`, content: blob(mib) } as TarEntry] })),
  ];
  const layout = await buildOciLayout(join(work, "layout"), { tag: "bench", images: [{ layers, config: { Cmd: ["/bin/sh"] } }] });
  const ref = await pushLayout(registry, layout, "bench/app");

  const skiffTimes: number[] = [];
  const baseTimes: number[] = [];
  for (let i = 0; i < runs; i++) {
    const cache = join(work, `cache-${i}`);
    const env = { ...process.env, SKIFF_HOME: join(work, `h${i}`), SKIFF_CACHE: cache };
    skiffTimes.push(time(() => execFileSync(process.execPath, [cli, "image", "pull", ref], { env, stdio: "ignore" })));
    const oci = join(work, `oci-${i}`);
    const bundle = join(work, `bundle-${i}`);
    baseTimes.push(
      time(() => {
        execFileSync("skopeo", ["--insecure-policy", "copy", "--quiet", "--src-tls-verify=false", `docker://${ref}`, `oci:${oci}:bench`]);
        execFileSync("umoci", ["unpack", "--image", `${oci}:bench`, bundle], { stdio: "ignore" });
        execFileSync("mke2fs", ["-q", "-t", "ext4", "-d", join(bundle, "rootfs"), "-F", join(work, `base-${i}.ext4`), "1G"]);
      }),
    );
    rmSync(oci, { recursive: true, force: true });
    rmSync(bundle, { recursive: true, force: true });
  }
  console.log(`A. pull+convert: skiff median ${median(skiffTimes).toFixed(0)} ms (${skiffTimes.map((t) => t.toFixed(0)).join(", ")})`);
  console.log(`   skopeo copy + umoci unpack + mke2fs -d: median ${median(baseTimes).toFixed(0)} ms (${baseTimes.map((t) => t.toFixed(0)).join(", ")})`);
  console.log(`   ratio ${(median(skiffTimes) / median(baseTimes)).toFixed(2)}x (goal <= 1.2x)`);

  const env = { ...process.env, SKIFF_HOME: join(work, "hrun"), SKIFF_CACHE: join(work, "cache-run"), SKIFF_USERNET_RESTRICT: "1" };
  const cold = time(() => execFileSync(process.execPath, [cli, "run", "--rm", ref, "true"], { env, stdio: "ignore" }));
  const warm: number[] = [];
  for (let i = 0; i < runs; i++) warm.push(time(() => execFileSync(process.execPath, [cli, "run", "--rm", ref, "true"], { env, stdio: "ignore" })));
  console.log(`B. run --rm: cold (pull + convert + boot) ${cold.toFixed(0)} ms, cached median ${median(warm).toFixed(0)} ms -> ${(median(warm) / cold).toFixed(2)}x`);
} finally {
  await registry.stop();
  spawnSync("sh", ["-c", `pkill -f ${work} || true`]);
  rmSync(work, { recursive: true, force: true });
}
