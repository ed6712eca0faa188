/**
 * Records match processes after a crash. Every row kills one skiff command
 * by SIGKILL, either exactly at a named crash point (SKIFF_TEST_CRASH_AT:
 * the windows between steps are milliseconds wide) or from outside after a
 * random delay, then runs ONE next command and holds the home to the
 * invariants of killpoints-world.ts: no QEMU without a record that says it
 * runs (and the reverse), `ps` agreeing with /proc, nothing of a run
 * (cgroup, egress table) outliving its QEMU, no jail claim without its VM,
 * no half-made directory; and the row's own outcome (a --rm VM is gone, a
 * stop really stopped). A `rm -f` leaves nothing of its VM.
 *
 * Four lanes, each with its own home, run side by side: points of create
 * and run, points of start and rm (which fire before a boot completes),
 * points of stop, cp and rm on one booted VM that is reused, and kills from
 * outside during `run`.
 * The last line counts the kills tried and the ones the next command
 * recovered from.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, it } from "vitest";
import { Harness, type CliResult } from "../vm/harness.js";
import { diskVms, homeProblems, psProblems, type PsRow } from "./killpoints-world.js";

/** Restricted user networking (the harness sets SKIFF_USERNET_RESTRICT): the jail gives each run an egress table. */
const net: string[] = [];
const create = (vm: string) => ["create", ...net, "--name", vm, "base"];
const runRm = (vm: string, ...cmd: string[]) => ["run", "--rm", ...net, "--name", vm, "base", ...(cmd.length > 0 ? cmd : ["sleep", "600"])];
const runFg = (vm: string) => ["run", ...net, "--name", vm, "base", "sleep", "600"];
const runD = (vm: string) => ["run", "-d", ...net, "--name", vm, "base"];
const ps = () => ["ps", "-a", "--format", "json"];

/** What the VM must be after the next command. */
type Outcome = "gone" | "created" | "running" | "stopped" | "any";

interface Row {
  what: string;
  /** The state the VM is brought to first. */
  before?: "created" | "running" | "stopped";
  argv: (vm: string) => string[];
  /** A crash point, or a kill from outside after a random part of how long the verb takes (`timing`). */
  at: string | { timing: keyof typeof timings };
  next: (vm: string) => string[];
  then: Outcome;
  /** Remove the VM afterwards with `rm -f` killed at this point (and the `rm -f` that follows). */
  rmAt?: string;
  /** Keep the VM for the next row. */
  keep?: boolean;
}

/** How long verbs take here, in ms: measured as the lanes run them, so outside kills land inside them. */
const timings = { "run -d": 7_000, "run --rm": 9_000, start: 6_000, stop: 1_500, "rm -f": 1_000 };

const verb = (argv: string[]) => argv.slice(0, argv[1]?.startsWith("-") ? 2 : 1).join(" ") as keyof typeof timings;

const createPoints: Row[] = [
  { what: "create, killed with its jail uid claimed", argv: create, at: "create:claimed", next: create, then: "created" },
  { what: "create, killed writing its creating marker", argv: create, at: "write:creating.json", next: ps, then: "gone" },
  { what: "create, killed writing config.json", argv: create, at: "write:config.json", next: ps, then: "gone" },
  { what: "create, killed when filled, before commit", argv: create, at: "create:filled", next: create, then: "created" },
  { what: "run --rm, killed with its uid claimed", argv: runRm, at: "create:claimed", next: ps, then: "gone" },
  { what: "run --rm, killed writing its owner", argv: runRm, at: "write:state.json", next: ps, then: "gone" },
  { what: "run --rm, killed before commit", argv: runRm, at: "create:filled", next: ps, then: "gone" },
  { what: "run --rm, killed once created", argv: runRm, at: "run:created", next: ps, then: "gone" },
  { what: "run, killed writing its owner", argv: runFg, at: "write:state.json", next: ps, then: "gone" },
  { what: "run, killed once created", argv: runFg, at: "run:created", next: ps, then: "created" },
  { what: "run -d, killed once created", argv: runD, at: "run:created", next: ps, then: "created" },
  { what: "run -d, killed with cgroup and egress made", argv: runD, at: "start:jail-ready", next: ps, then: "created" },
  { what: "run --rm, killed with cgroup and egress made", argv: runRm, at: "start:jail-ready", next: ps, then: "gone" },
];

const startPoints: Row[] = [
  { what: "start, killed with cgroup and egress made", before: "created", argv: (vm) => ["start", vm], at: "start:jail-ready", next: (vm) => ["start", vm], then: "running", rmAt: "rm:killed" },
  { what: "run -d, killed with QEMU spawned", argv: runD, at: "start:spawned", next: ps, then: "running", rmAt: "rm:trashed" },
  { what: "run --rm, killed with QEMU spawned", argv: runRm, at: "start:spawned", next: ps, then: "gone" },
  { what: "run, killed with QEMU spawned", argv: runFg, at: "start:spawned", next: ps, then: "stopped" },
  { what: "start, killed with QEMU spawned", before: "created", argv: (vm) => ["start", vm], at: "start:spawned", next: ps, then: "running", rmAt: "rm:killed" },
  { what: "start, killed writing state.json", before: "created", argv: (vm) => ["start", vm], at: "write:state.json", next: ps, then: "running", rmAt: "rm:trashed" },
  { what: "run -d, killed writing state.json", argv: runD, at: "write:state.json", next: ps, then: "running" },
  { what: "rm, killed after ending processes", before: "created", argv: (vm) => ["rm", vm], at: "rm:killed", next: (vm) => ["rm", vm], then: "gone" },
  { what: "rm, killed with the directory trashed", before: "created", argv: (vm) => ["rm", vm], at: "rm:trashed", next: ps, then: "gone" },
  { what: "rm, killed with its jail user given back", before: "created", argv: (vm) => ["rm", vm], at: "rm:released", next: ps, then: "gone" },
];

const stop = (vm: string) => ["stop", vm];
const rmF = (vm: string) => ["rm", "-f", vm];
const outside = (timing: keyof typeof timings) => ({ timing });
const times = (n: number, row: Row): Row[] => Array.from({ length: n }, (_, i) => ({ ...row, what: `${row.what} (${i + 1})` }));

const out = mkdtempSync("/tmp/skkp-out-");
/** In an order that boots as seldom as it can: each boot costs seconds of TCG. */
const bootedPoints: Row[] = [
  { what: "cp of a file, killed with its staging made", before: "running", argv: (vm) => ["cp", `${vm}:/etc/hostname`, join(out, "f")], at: "cp:staged", next: ps, then: "running", keep: true },
  { what: "cp of another file, killed with its staging made", before: "running", argv: (vm) => ["cp", `${vm}:/etc/passwd`, join(out, "p")], at: "cp:staged", next: ps, then: "running", keep: true },
  { what: "stop, killed once QEMU ended", before: "running", argv: stop, at: "stop:ended", next: ps, then: "stopped", keep: true },
  ...times(3, { what: "start, killed from outside", before: "stopped", argv: (vm) => ["start", vm], at: outside("start"), next: stop, then: "stopped", keep: true }),
  { what: "stop, killed recording the end", before: "running", argv: stop, at: "write:state.json", next: stop, then: "stopped", keep: true },
  ...times(2, { what: "stop, killed from outside", before: "running", argv: stop, at: outside("stop"), next: stop, then: "stopped", keep: true }),
  { what: "rm -f, killed after ending QEMU", before: "running", argv: rmF, at: "rm:killed", next: rmF, then: "gone" },
  { what: "rm -f, killed with the directory trashed", before: "running", argv: rmF, at: "rm:trashed", next: ps, then: "gone" },
  ...times(2, { what: "rm -f, killed from outside", before: "running", argv: rmF, at: outside("rm -f"), next: rmF, then: "gone" }),
];

const runKills: Row[] = [
  ...times(3, { what: "run -d, killed from outside", argv: runD, at: outside("run -d"), next: ps, then: "any" }),
  ...times(3, { what: "run --rm, killed from outside", argv: (vm) => runRm(vm, "true"), at: outside("run --rm"), next: ps, then: "gone" }),
];

/** mulberry32: the delays of outside kills, repeatable with KILLPOINTS_SEED. */
const seed = Number(process.env.KILLPOINTS_SEED ?? Date.now() % 1_000_000);
let rngState = seed;
function random(): number {
  rngState = (rngState + 0x6d2b79f5) | 0;
  let t = Math.imul(rngState ^ (rngState >>> 15), 1 | rngState);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const tally = { tried: 0, recovered: 0, finishedFirst: 0 };
const failures: string[] = [];
const harnesses: Harness[] = [];

afterAll(async () => {
  for (const h of harnesses) {
    const names = (JSON.parse((await h.run(ps())).stdout || "[]") as PsRow[]).map((r) => r.name);
    if (names.length > 0) await h.run(["rm", "-f", ...names]);
    await h.cleanup();
  }
  rmSync(out, { recursive: true, force: true });
  for (const f of failures) console.log(`not recovered: ${f}`);
  console.log(`kill points: ${tally.tried} tried, ${tally.recovered} recovered (seed ${seed}${tally.finishedFirst > 0 ? `; ${tally.finishedFirst} outside kills came after the command had ended and are not counted` : ""})`);
});

/** Run the CLI and tell how it ended: by its own exit or by a signal. */
function runTimed(h: Harness, argv: string[], opts: { crashAt?: string; killAfterMs?: number }): Promise<CliResult & { signal: NodeJS.Signals | null }> {
  const child = h.spawn(argv, opts.crashAt === undefined ? {} : { env: { SKIFF_TEST_CRASH_AT: opts.crashAt } });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdin?.end();
  const timer = opts.killAfterMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), opts.killAfterMs);
  return new Promise((resolve) =>
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, signal, stdout, stderr });
    }),
  );
}

/** A lane: one home, its rows one after the other. */
class Lane {
  readonly h = new Harness();
  readonly uids = new Set<number>();
  /** Each VM's state as the last `ps` showed it. */
  readonly states = new Map<string, string>();
  #n = 0;

  constructor(readonly prefix: string) {
    harnesses.push(this.h);
  }

  async cli(argv: string[], ok = true): Promise<CliResult> {
    const t0 = Date.now();
    const r = await this.h.run(argv, { timeoutMs: 240_000 });
    if (ok && r.code !== 0) throw new Error(`skiff ${argv.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
    if (r.code === 0 && verb(argv) in timings) timings[verb(argv)] = Date.now() - t0;
    return r;
  }

  /** `ps -a` (or the output of one already run), checked against /proc. */
  async rows(text?: string): Promise<PsRow[]> {
    const rows = JSON.parse(text ?? (await this.cli(ps())).stdout) as PsRow[];
    const problems = psProblems(this.h.home, rows);
    if (problems.length > 0) throw new Error(`ps disagrees with /proc: ${problems.join("; ")}`);
    for (const row of rows) this.states.set(row.name, row.state);
    return rows;
  }

  async check(what: string, opts: { debris?: boolean } = {}): Promise<void> {
    const problems = await homeProblems(this.h.home, this.uids, opts);
    if (problems.length > 0) throw new Error(`${what}: ${problems.join("; ")}`);
  }

  /** Bring the VM to `want` from the state the last row left it in. */
  async bring(vm: string, want: NonNullable<Row["before"]>): Promise<void> {
    const state = this.states.get(vm) ?? "gone";
    if (state === want) return;
    if (want === "running") await this.cli(state === "gone" ? runD(vm) : ["start", vm]);
    else if (state === "gone") await this.cli(create(vm));
    else if (want === "stopped" && state === "running") await this.cli(stop(vm));
    this.states.set(vm, want);
  }

  /** The VM gone by `rm -f`, maybe killed at `at` first; nothing of it may be left. */
  async remove(vm: string, at?: string, mayBeGone = false): Promise<void> {
    if (at !== undefined) await this.kill(`rm -f, killed at ${at}`, () => runTimed(this.h, rmF(vm), { crashAt: at }), async () => {
      const r = await this.cli(rmF(vm), false);
      if (r.code !== 0 && !r.stderr.includes("no such VM")) throw new Error(`rm -f after the kill: ${r.stderr.trim()}`);
    });
    else {
      const r = await this.cli(rmF(vm), false);
      if (r.code !== 0 && !(mayBeGone && r.stderr.includes("no such VM"))) throw new Error(`skiff rm -f ${vm} exited ${r.code}: ${r.stderr.trim()}`);
    }
    this.states.delete(vm);
    await this.check(`after rm -f ${vm}`);
    if (diskVms(this.h.home).vms.some((v) => v.name === vm)) throw new Error(`${vm} still has a directory after rm -f`);
  }

  /** Count one kill; `after` is what must recover from it. */
  async kill(what: string, killed: () => ReturnType<typeof runTimed>, after: () => Promise<void>, outsideKill = false): Promise<boolean> {
    const r = await killed();
    if (r.signal !== "SIGKILL") {
      if (outsideKill && r.code === 0) {
        tally.finishedFirst++;
        return false;
      }
      tally.tried++;
      throw new Error(`${what}: expected death by SIGKILL, got exit ${r.code}: ${r.stderr.trim()}`);
    }
    tally.tried++;
    await after();
    tally.recovered++;
    return true;
  }

  async row(row: Row, vmName?: string): Promise<void> {
    const vm = vmName ?? `${this.prefix}${++this.#n}`;
    if (row.before !== undefined) await this.bring(vm, row.before);
    const argv = row.argv(vm);
    const crashAt = typeof row.at === "string" ? row.at : undefined;
    const killAfterMs = typeof row.at === "string" ? undefined : Math.round(random() * 0.9 * timings[row.at.timing]);
    const killed = await this.kill(
      `${row.what}${killAfterMs === undefined ? "" : ` after ${killAfterMs} ms`}`,
      () => runTimed(this.h, argv, { ...(crashAt === undefined ? {} : { crashAt }), ...(killAfterMs === undefined ? {} : { killAfterMs }) }),
      async () => {
        const next = row.next(vm);
        const r = await this.cli(next, false);
        const gone = next[0] === "rm" && r.stderr.includes("no such VM");
        if (r.code !== 0 && !gone) throw new Error(`next command skiff ${next.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
        await this.check(`after skiff ${next.join(" ")}`, { debris: next[0] !== "stop" });
        await this.outcome(vm, row.then, next[0] === "ps" ? r.stdout : undefined);
        if (row.argv(vm)[0] === "cp") {
          const staging = readdirSync(out).filter((e) => e.startsWith(".skiff-cp-"));
          if (staging.length > 0 || readdirSync(out).length > 0) throw new Error(`cp left ${readdirSync(out).join(", ")}`);
        }
      },
      killAfterMs !== undefined,
    );
    // An outside kill that came after the command had ended: the VM is as that command left it (a --rm VM
    // may be gone); ps says which, for the next row (a kept VM is brought from there, never made again).
    if (!killed) await this.outcome(vm, "any");
    const state = this.states.get(vm) ?? "gone";
    if (row.keep !== true && state !== "gone") await this.remove(vm, row.rmAt);
  }

  /** What `ps` says of the VM after the next command; an error unless it is `then`. */
  async outcome(vm: string, then: Outcome, psOutput?: string): Promise<string> {
    const state = (await this.rows(psOutput)).find((r) => r.name === vm)?.state ?? "gone";
    this.states.set(vm, state);
    const ok = then === "any" || state === then || (then === "stopped" && state === "crashed");
    if (!ok) throw new Error(`${vm} is ${state}, expected ${then}`);
    return state;
  }

  /** Every row; a failing row is reported and the lane goes on with a fresh VM. */
  async run(rows: Row[], vm?: string): Promise<void> {
    for (const row of rows) {
      try {
        await this.row(row, vm);
      } catch (err) {
        failures.push(`${this.prefix}: ${row.what}: ${(err as Error).message.split("\n")[0]}`);
        const name = vm ?? `${this.prefix}${this.#n}`;
        await this.cli(rmF(name), false);
        this.states.delete(name);
      }
    }
    await this.check("at the end of the lane").catch((err: Error) => failures.push(`${this.prefix}: ${err.message}`));
  }
}

describe.concurrent("kill points: records match processes after every SIGKILL", () => {
  it("create and run killed before their VM starts", async ({ expect }) => {
    const lane = new Lane("a");
    await lane.run(createPoints);
    expect(failures.filter((f) => f.startsWith("a"))).toEqual([]);
  }, 400_000);

  it("start and rm killed before a boot completes, and up", async ({ expect }) => {
    const lane = new Lane("d");
    await lane.run(startPoints);
    // up marks its VM before starting it: killed there, the next up starts it.
    const dir = mkdtempSync("/tmp/skkp-up-");
    writeFileSync(join(dir, "skiff.yml"), 'version: "1"\nservices:\n  app:\n    image: base\n');
    const up = ["up", "-d", "-f", join(dir, "skiff.yml"), "-p", "kp"];
    try {
      await lane.kill("up, killed with its VM marked", () => runTimed(lane.h, up, { crashAt: "up:marked" }), async () => {
        await lane.cli(up);
        await lane.check("after the next up");
        const rows = (await lane.rows()).filter((r) => r.name.startsWith("kp"));
        if (rows.length !== 1 || rows[0]!.state !== "running") throw new Error(`up after the kill: ${JSON.stringify(rows)}`);
        await lane.remove(rows[0]!.name);
      });
    } catch (err) {
      failures.push(`d: up: ${(err as Error).message.split("\n")[0]}`);
    }
    rmSync(dir, { recursive: true, force: true });
    expect(failures.filter((f) => f.startsWith("d"))).toEqual([]);
  }, 400_000);

  it("stop, cp and rm killed on a booted VM", async ({ expect }) => {
    const lane = new Lane("b");
    await lane.run(bootedPoints, "b");
    expect(failures.filter((f) => f.startsWith("b"))).toEqual([]);
  }, 400_000);

  it("run -d and run --rm killed from outside", async ({ expect }) => {
    const lane = new Lane("c");
    // How long a whole `run --rm` takes here, so that the kills land inside one.
    await lane.cli(runRm("c0", "true"));
    await lane.run(runKills);
    expect(failures.filter((f) => f.startsWith("c"))).toEqual([]);
  }, 400_000);
});
