/**
 * skiff image pull|import|ls|inspect|rm|prune, skiff login|logout, skiff system df.
 */
import type { Command } from "commander";
import { formatAge, formatBytes, SkiffError } from "../../pure.js";
import type { CliContext } from "../context.js";
import { table } from "../output.js";
import { pullReporter } from "../pull-progress.js";

/** The library's image service, made when an image command runs. */
async function imageService(ctx: CliContext) {
  return (await ctx.skiff()).images;
}

/** ls, inspect, rm and pull of registry images: here or through a server. */
async function imageClient(ctx: CliContext) {
  return (await ctx.client()).images;
}

async function readPassword(fromStdin: boolean | undefined): Promise<string> {
  if (fromStdin !== true) {
    throw new SkiffError("ERR_SKIFF_USAGE", "no password given", { place: "--password", hint: "use -p PASSWORD or --password-stdin" });
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
}

export function registerImage(program: Command, ctx: CliContext): void {
  const image = program.command("image").description("manage images: pull, import, ls, inspect, rm, prune");

  image
    .command("pull")
    .description("pull an OCI image from its registry and make it bootable, or fetch a cloud image (http(s) URL or .qcow2/.img/.raw path)")
    .argument("<ref>", "e.g. alpine, nginx:1.27, ghcr.io/org/app@sha256:…, localhost:5000/app")
    .option("--platform <os/arch[/variant]>", "platform to pull (default linux/amd64)")
    .option("--refetch", "cloud images: download again even if the URL is cached")
    .action(async (ref: string, flags: { platform?: string; refetch?: boolean }) => {
      if (ctx.remoteHost() === undefined) {
        const images = await imageService(ctx);
        if (await images.isCloudRef(ref)) {
          const cloud = await images.pullCloud(ref, { refetch: flags.refetch === true });
          if (ctx.flags.json) process.stdout.write(JSON.stringify(cloud, null, 2) + "\n");
          else process.stdout.write(`${cloud.path}\n`);
          return;
        }
      }
      const result = await (await imageClient(ctx)).pull(ref, {
        ...(flags.platform === undefined ? {} : { platform: flags.platform }),
        ...(ctx.flags.json ? {} : { onPull: pullReporter() }),
      });
      if (ctx.flags.json) process.stdout.write(JSON.stringify(result, null, 2) + "\n");
      else process.stdout.write(`${result.name}\n`);
    });

  image
    .command("import")
    .description("import a docker save archive, an OCI layout (dir or tar), a rootfs tarball or a directory")
    .argument("<path>")
    .option("--name <name>", "name of the image (default: the archive's own, else the file name)")
    .option("--platform <os/arch[/variant]>", "platform to take from a multi-platform layout")
    .action(async (path: string, flags: { name?: string; platform?: string }) => {
      const images = await imageService(ctx);
      const result = await images.import(path, {
        ...(flags.name === undefined ? {} : { name: flags.name }),
        ...(flags.platform === undefined ? {} : { platform: flags.platform }),
      });
      process.stdout.write(ctx.flags.json ? JSON.stringify(result, null, 2) + "\n" : `${result.name} (${result.kind}, ${result.digest.slice(0, 19)})\n`);
    });

  image
    .command("ls")
    .description("list images: microVM bases and cloud images (a name belongs to the newest image that has it; older ones show <none>)")
    .option("--json", "print JSON")
    .action(async () => {
      const found = await (await imageClient(ctx)).list();
      if (ctx.flags.json) {
        process.stdout.write(JSON.stringify(found, null, 2) + "\n");
        return;
      }
      const now = Date.now();
      const rows = found.map((i) => [
        i.name ?? "<none>",
        i.digest.slice(7, 19),
        formatAge(now - Date.parse(i.createdAt)),
        formatBytes(i.diskUsageBytes),
        formatBytes(i.sizeBytes),
        i.usedBy.length === 0 ? "" : i.usedBy.join(","),
        i.snapshots.find((s) => s.kind === "boot")?.id.slice(0, 12) ?? "",
      ]);
      process.stdout.write(table(["IMAGE", "ID", "CREATED", "SIZE", "DISK", "USED BY", "BOOT SNAPSHOT"], rows));
    });

  image
    .command("inspect")
    .description("an image's record: digest, references, config (entrypoint, cmd, env, user, ports), size")
    .argument("<image>")
    .action(async (query: string) => {
      const images = await imageClient(ctx);
      process.stdout.write(JSON.stringify(await images.inspect(query), null, 2) + "\n");
    });

  image
    .command("rm")
    .description("remove images (refused while a VM uses one)")
    .argument("<images...>")
    .action(async (queries: string[]) => {
      const images = await imageClient(ctx);
      for (const q of queries) {
        const removed = await images.remove(q);
        process.stdout.write(`Deleted: ${removed.digest}\n`);
      }
    });

  image
    .command("prune")
    .description("remove dangling images (no name, no reference) no VM uses, and the downloaded layers no image needs")
    .option("-a, --all", "remove every image no VM uses (named ones, cloud images, the built-in base)")
    .action(async (flags: { all?: boolean }) => {
      const r = await (await imageService(ctx)).prune({ all: flags.all === true });
      for (const name of r.removed) process.stdout.write(`Deleted: ${name}\n`);
      process.stdout.write(`Total reclaimed space: ${formatBytes(r.freedBytes)}\n`);
    });

  program
    .command("login")
    .description("log in to a registry (credentials checked, then kept in SKIFF_HOME/auth.json, mode 0600)")
    .argument("<registry>")
    .requiredOption("-u, --username <user>")
    .option("-p, --password <password>")
    .option("--password-stdin", "read the password from stdin")
    .action(async (registry: string, flags: { username: string; password?: string; passwordStdin?: boolean }) => {
      const password = flags.password ?? (await readPassword(flags.passwordStdin));
      const r = await (await imageService(ctx)).login(registry, flags.username, password);
      process.stdout.write(`Login Succeeded (${r.registry})\n`);
    });

  program
    .command("logout")
    .description("forget the credentials of a registry")
    .argument("<registry>")
    .action(async (registry: string) => {
      const removed = await (await imageService(ctx)).logout(registry);
      process.stdout.write(removed ? `Removed login credentials for ${registry}\n` : `Not logged in to ${registry}\n`);
    });

  const system = program.command("system").description("skiff as a whole");
  system
    .command("df")
    .description("disk used by images, downloaded layers, snapshots, VMs and unfinished imports and pulls")
    .option("--json", "print JSON")
    .action(async () => {
      const du = await (await imageService(ctx)).diskUsage();
      if (ctx.flags.json) {
        process.stdout.write(JSON.stringify(du, null, 2) + "\n");
        return;
      }
      process.stdout.write(
        table(
          ["TYPE", "COUNT", "SIZE"],
          [
            ["Images (bases)", String(du.images.count), formatBytes(du.images.bytes)],
            ["Layers and manifests", String(du.blobs.count), formatBytes(du.blobs.bytes)],
            ["Snapshots", String(du.snapshots.count), formatBytes(du.snapshots.bytes)],
            ["VMs", String(du.vms.count), formatBytes(du.vms.bytes)],
            [
              "Staging (unfinished imports, pulls)",
              String(du.staging.count),
              `${formatBytes(du.staging.bytes)}${du.staging.reclaimableBytes > 0 ? ` (${formatBytes(du.staging.reclaimableBytes)} left by killed commands)` : ""}`,
            ],
          ],
        ),
      );
    });
}
