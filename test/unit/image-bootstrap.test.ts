/**
 * `image bootstrap` makes the same image from the same mirror: mmdebstrap
 * is given SOURCE_DATE_EPOCH, the mirror's Release date (or the caller's),
 * so its tarball, and the image named by its digest, do not change between
 * runs. mmdebstrap stands in for itself here (a tarball whose bytes follow
 * SOURCE_DATE_EPOCH as its own do); the mirror is a real HTTP server on
 * loopback, the import a real one.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootstrapDebian } from "../../src/image/bootstrap.js";
import { mmdebstrapArgs, releaseDateEpoch, releaseUrls } from "../../src/image/bootstrap-args.js";
import { defaultRunner, type Runner } from "../../src/process/runner.js";

const published = "Sun, 06 Dec 2026 07:00:00 UTC";
const publishedEpoch = Date.UTC(2026, 11, 6, 7) / 1000;

describe("releaseDateEpoch", () => {
  it("reads a Release's Date, signed or not", () => {
    expect(releaseDateEpoch(`Origin: Debian\nSuite: stable\nDate: ${published}\nSHA256:\n`)).toBe(publishedEpoch);
    expect(releaseDateEpoch(`-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\r\nDate: Sat, 08 Nov 2025 09:12:41 UTC\r\n`)).toBe(Date.UTC(2025, 10, 8, 9, 12, 41) / 1000);
  });

  it("is undefined without a Date or with one that is no date", () => {
    expect(releaseDateEpoch("Origin: x\nSuite: bookworm\n")).toBeUndefined();
    expect(releaseDateEpoch("Date: yesterday-ish\n")).toBeUndefined();
    expect(releaseDateEpoch("Valid-Until: Sun, 06 Dec 2026 07:00:00 UTC\n")).toBeUndefined();
    expect(releaseDateEpoch(`Date: ${"9".repeat(5000)}\n`)).toBeUndefined();
  });

  it("leaves the image's sources.list as the mirror made it unless told otherwise", () => {
    const plain = mmdebstrapArgs({ suite: "bookworm", target: "/t.tar", mirror: "http://m.test/debian" });
    expect(plain.filter((a) => a.startsWith("--customize-hook"))).toEqual([]);
    expect(plain.slice(-3)).toEqual(["bookworm", "/t.tar", "http://m.test/debian"]);
    const named = mmdebstrapArgs({ suite: "bookworm", target: "/t.tar", sourcesList: "deb http://x.test/it's bookworm main" });
    expect(named).toContain(`--customize-hook=printf '%s\\n' 'deb http://x.test/it'\\''s bookworm main' > "$1/etc/apt/sources.list"`);
  });

  it("looks for InRelease, then Release, where apt would", () => {
    expect(releaseUrls("http://m.test/debian", "bookworm", false)).toEqual(["http://m.test/debian/dists/bookworm/InRelease", "http://m.test/debian/dists/bookworm/Release"]);
    expect(releaseUrls("http://m.test/flat/", "bookworm", true)).toEqual(["http://m.test/flat/InRelease", "http://m.test/flat/Release"]);
  });
});

describe("bootstrapDebian", () => {
  let work: string;
  let server: Server;
  let mirror: string;
  /** Path → body the mirror serves; anything else is a 404. */
  const files = new Map<string, string>();
  const epochs: (string | undefined)[] = [];
  const hooks: (string | undefined)[] = [];

  /** mmdebstrap as far as the bootstrap can tell: a root filesystem tarball at its target, times clamped to SOURCE_DATE_EPOCH. */
  const runner: Runner = {
    async run(cmd, args, opts) {
      if (cmd !== "mmdebstrap") return defaultRunner.run(cmd, args, opts);
      const epoch = opts?.env?.SOURCE_DATE_EPOCH;
      epochs.push(epoch);
      hooks.push(args.find((a) => a.startsWith("--customize-hook=")));
      const target = args.find((a) => a.endsWith(".tar"))!;
      const root = join(work, `root-${epochs.length}`);
      mkdirSync(join(root, "etc"), { recursive: true });
      writeFileSync(join(root, "etc", "os-release"), "ID=debian\nVERSION_CODENAME=bookworm\n");
      const mtime = epoch === undefined ? `@${Math.floor(Date.now() / 1000) - epochs.length}` : `@${epoch}`;
      return defaultRunner.run("tar", ["--sort=name", `--mtime=${mtime}`, "--owner=0", "--group=0", "-cf", target, "-C", root, "."], { check: true });
    },
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "skiff-bootstrap-test-"));
    server = createServer((req, res) => {
      const body = files.get(new URL(req.url ?? "/", "http://x").pathname);
      if (body === undefined) res.writeHead(404).end();
      else res.writeHead(200, { "content-length": Buffer.byteLength(body) }).end(req.method === "HEAD" ? undefined : body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    mirror = `http://127.0.0.1:${(server.address() as AddressInfo).port}/debian`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await rm(work, { recursive: true, force: true });
  });

  const bootstrap = (cache: string) => bootstrapDebian({ cacheDir: join(work, cache), mirror, runner });

  it("clamps the image to the mirror's Release date, so a second bootstrap names the same image", async () => {
    files.clear();
    files.set("/debian/dists/bookworm/Release", `Origin: skiff-test\nSuite: bookworm\nDate: ${published}\nSHA256:\n`);
    const first = await bootstrap("cache-a");
    const second = await bootstrap("cache-b");
    expect(epochs.slice(-2)).toEqual([String(publishedEpoch), String(publishedEpoch)]);
    expect(first.sourceDateEpoch).toBe(publishedEpoch);
    expect(second.digest).toBe(first.digest);
    // The loopback mirror's address (its port changes from run to run) is not what the image's apt is left with.
    expect(hooks.slice(-2)).toEqual([1, 2].map(() => `--customize-hook=printf '%s\\n' 'deb http://deb.debian.org/debian/ bookworm main' > "$1/etc/apt/sources.list"`));
  });

  it("prefers InRelease, and a flat repository's own Release", async () => {
    files.clear();
    files.set("/debian/dists/bookworm/InRelease", `-----BEGIN PGP SIGNED MESSAGE-----\n\nDate: Sat, 08 Nov 2025 09:12:41 UTC\n`);
    files.set("/debian/dists/bookworm/Release", `Date: ${published}\n`);
    expect((await bootstrap("cache-c")).sourceDateEpoch).toBe(Date.UTC(2025, 10, 8, 9, 12, 41) / 1000);
    files.clear();
    files.set("/debian/Packages", "");
    files.set("/debian/Release", `Date: ${published}\n`);
    expect((await bootstrap("cache-d")).sourceDateEpoch).toBe(publishedEpoch);
  });

  it("takes the caller's SOURCE_DATE_EPOCH over the mirror's", async () => {
    files.clear();
    files.set("/debian/dists/bookworm/Release", `Date: ${published}\n`);
    const r = await bootstrapDebian({ cacheDir: join(work, "cache-e"), mirror, runner, sourceDateEpoch: 1_700_000_000 });
    expect(epochs.at(-1)).toBe("1700000000");
    expect(r.sourceDateEpoch).toBe(1_700_000_000);
  });

  it("without a Release it reads, bootstraps at the time of the run, as mmdebstrap does alone", async () => {
    files.clear();
    files.set("/debian/dists/bookworm/Release", "Origin: no date here\n");
    const r = await bootstrap("cache-f");
    expect(epochs.at(-1)).toBeUndefined();
    expect(r.sourceDateEpoch).toBeUndefined();
    files.clear();
    expect((await bootstrap("cache-g")).sourceDateEpoch).toBeUndefined();
  });
});
