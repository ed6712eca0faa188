/**
 * Jail users are unique on the host, not only in one skiff home: every home
 * (a user's, each test's) hands them out from the same block, and two VMs
 * that shared a uid could reach each other's disks and memory. So each jail
 * uid in use has a claim, `<registry>/<uid>.json` naming the home and VM,
 * made under one host-wide lock. A claim whose VM directory is gone (its
 * home removed with `rm -rf`, as tests do) is stale: its processes, if any
 * still run, are ended, and the uid is handed out again.
 *
 * That uniqueness is what lets skiff find a VM's QEMU by its uid
 * (vm-process.ts): no other process on the host can have it.
 */
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { SkiffError } from "../errors.js";
import { withLock } from "../store/lock.js";
import { vmDirPresent, vmsDir } from "../store/paths.js";
import { alive, ProcTable } from "../process/procs.js";
import { hostAccountIds, jailIdBase, maxJailSlots, type JailIds } from "./ids.js";

export interface JailClaim {
  uid: number;
  home: string;
  vmId: string;
}

/** Where the claims live (root's default skiff home; SKIFF_JAIL_REGISTRY moves it). */
export function registryHome(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.SKIFF_JAIL_REGISTRY ?? "/var/lib/skiff");
}

function claimsDir(): string {
  return join(registryHome(), "jail-ids");
}

function claimPath(uid: number): string {
  return join(claimsDir(), `${uid}.json`);
}

export async function readClaims(): Promise<JailClaim[]> {
  let entries: string[];
  try {
    entries = await readdir(claimsDir());
  } catch {
    return [];
  }
  const claims: JailClaim[] = [];
  for (const entry of entries) {
    const match = /^(\d+)\.json$/.exec(entry);
    if (match === null) continue;
    const claim = parseClaim(Number(match[1]), await readFile(join(claimsDir(), entry), "utf8").catch(() => ""));
    claims.push(claim);
  }
  return claims;
}

/** A claim's text; an unreadable one still holds its uid (it names no VM, so it is stale). */
function parseClaim(uid: number, text: string): JailClaim {
  try {
    const value = JSON.parse(text) as Partial<JailClaim>;
    if (typeof value.home === "string" && typeof value.vmId === "string" && /^[0-9a-f]+$/.test(value.vmId)) {
      return { uid, home: value.home, vmId: value.vmId };
    }
  } catch {
    // fall through
  }
  return { uid, home: "", vmId: "" };
}

/**
 * True while the claimed VM's directory exists (or is still being made: the
 * store claims once its `.tmp-ID` directory exists, then renames it to ID).
 * Looked at in the order that cannot miss the rename (vmDirPresent): the
 * other order once made a live claim stale, and its uid went to a second VM
 * (16 `run -d` at once: one VM saw its twin's QEMU as its own).
 */
export function claimLive(claim: JailClaim, exists?: (path: string) => boolean): boolean {
  if (claim.home === "") return false;
  return vmDirPresent(vmsDir(claim.home), claim.vmId, exists);
}

/**
 * Claim the lowest free jail uid for VM `vmId` of `home`. `reap` ends what
 * still runs as a stale claim's uid before that uid is handed out again.
 */
export async function claimJailIds(home: string, vmId: string, reap: (uid: number) => Promise<boolean>): Promise<JailIds> {
  return withLock(
    "jail-ids",
    async () => {
      await mkdir(claimsDir(), { recursive: true, mode: 0o700 });
      const base = jailIdBase();
      const hostIds = hostAccountIds();
      const held = new Set<number>();
      for (const claim of await readClaims()) {
        if (claimLive(claim)) held.add(claim.uid);
        // A stale claim goes once nothing runs as its uid; until then the uid stays taken.
        else if (await reap(claim.uid)) await rm(claimPath(claim.uid), { force: true });
        else held.add(claim.uid);
      }
      // A process may run as a uid nobody claims: a removed VM's QEMU still exiting.
      // Handing that uid out would make it the new VM's "QEMU" (vm-process.ts finds QEMU by uid).
      const running = new Set(new ProcTable().procs.filter(alive).map((p) => p.uid));
      for (let slot = 1; slot <= maxJailSlots; slot++) {
        const uid = base + slot;
        if (held.has(uid) || hostIds.has(uid)) continue;
        if (running.has(uid) && !(await reap(uid))) continue;
        await writeFile(claimPath(uid), `${JSON.stringify({ home: resolve(home), vmId })}\n`, { mode: 0o600 });
        return { uid, gid: uid };
      }
      throw new SkiffError("ERR_SKIFF_HOST", `no free jail user: all ${maxJailSlots} ids from ${base + 1} are taken`, {
        hint: "remove VMs you no longer need (`skiff ps -a`, `skiff rm`), or move the block with SKIFF_JAIL_ID_BASE",
      });
    },
    { home: registryHome(), purpose: `give VM ${vmId} a jail user`, timeoutMs: 30_000 },
  );
}

/**
 * Give back VM `vmId`'s uid (it is being removed); a claim of another VM is
 * left alone. Without `uid` (a VM killed between its claim and writing its
 * config, which names the uid), every claim is looked at for the VM's.
 */
export async function releaseJailIds(home: string, vmId: string, uid?: number): Promise<void> {
  await withLock(
    "jail-ids",
    async () => {
      const candidates = uid !== undefined ? [uid] : (await readClaims()).filter((c) => c.vmId === vmId).map((c) => c.uid);
      for (const candidate of candidates) {
        const text = await readFile(claimPath(candidate), "utf8").catch(() => undefined);
        if (text === undefined) continue;
        const claim = parseClaim(candidate, text);
        if (claim.home === resolve(home) && claim.vmId === vmId) await rm(claimPath(candidate), { force: true });
      }
    },
    { home: registryHome(), purpose: `free VM ${vmId}'s jail user`, timeoutMs: 30_000 },
  );
}
