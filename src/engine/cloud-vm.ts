/**
 * What a cloud-image VM needs beyond a microVM's: its own SSH forward port,
 * a qcow2 overlay on the downloaded disk (grown with --disk), and a
 * cloud-init NoCloud seed carrying the VM's client key and skiff's host key
 * (converted to OpenSSH's format, so the guest's key is pinned from the
 * first boot on).
 */
import { readFile, rm } from "node:fs/promises";
import { errnoOf, SkiffError } from "../errors.js";
import { cloudInitSeed, writeSeedIso } from "../image/cloud.js";
import type { Runner } from "../process/runner.js";
import type { VmRecord } from "../store/store.js";
import type { VmKeys } from "./keys.js";

export async function readUserData(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `cannot read user-data file ${path}: ${errnoOf(err) ?? String(err)}`, {
      place: "userDataPath",
      cause: err,
    });
  }
}

export async function prepareCloudDisk(opts: {
  record: VmRecord;
  keys: VmKeys;
  image: { path: string; format: string; virtualSize: number };
  diskBytes: number | undefined;
  userData: string | undefined;
  runner: Runner;
}): Promise<void> {
  const { record, runner, image } = opts;
  const hostKeyOpenssh = `${record.paths.hostKey}.openssh`;
  await runner.run("dropbearconvert", ["dropbear", "openssh", record.paths.hostKey, hostKeyOpenssh], {
    check: true,
    debianPackage: "dropbear-bin",
  });
  const privateKey = await readFile(hostKeyOpenssh, "utf8");
  await rm(hostKeyOpenssh, { force: true });
  await runner.run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", image.format, "-b", image.path, record.paths.overlay], {
    check: true,
    debianPackage: "qemu-utils",
  });
  if (opts.diskBytes !== undefined && opts.diskBytes > image.virtualSize) {
    await runner.run("qemu-img", ["resize", "-q", record.paths.overlay, String(opts.diskBytes)], { check: true, debianPackage: "qemu-utils" });
  }
  const seed = cloudInitSeed({
    instanceId: `skiff-${record.id}`,
    hostname: record.config.spec.hostname,
    ...(record.config.spec.boot?.kind === "cloud" ? { user: record.config.spec.boot.sshUser } : {}),
    authorizedKey: opts.keys.clientPublicKey,
    hostKey: { privateKey, publicKey: opts.keys.hostPublicKey },
    ...(opts.userData === undefined ? {} : { userData: opts.userData }),
  });
  await writeSeedIso(runner, record.paths.seed, seed);
}
