/**
 * skiff network create|ls|inspect|rm|up|down|tcpdump, skiff port, skiff port-forward.
 */
import { createWriteStream, type WriteStream } from "node:fs";
import type { Command } from "commander";
import { SkiffError } from "../../pure.js";
import type { Capture, NetworkDriver, NetworkInfo } from "../../index.js";
import type { CliContext } from "../context.js";
import { table } from "../output.js";

/** The library's network service, made when a network command runs (up, down and tcpdump: this host's only). */
async function networkService(ctx: CliContext) {
  return (await ctx.skiff()).networks;
}

/** create, ls, inspect, rm: here or through a server. */
async function networkClient(ctx: CliContext) {
  return (await ctx.client()).networks;
}

function driverFlag(value: string | undefined): NetworkDriver | undefined {
  if (value === undefined || value === "private" || value === "bridge" || value === "link") return value;
  throw new SkiffError("ERR_SKIFF_USAGE", `unknown network driver: ${value}`, { place: "--driver", hint: "use private (default, rootless), bridge (root) or link" });
}

function summary(n: NetworkInfo): string[] {
  const flags = [n.masquerade ? "masquerade" : "", n.internal ? "internal" : "", n.bridge ?? ""].filter((f) => f !== "");
  return [n.name, n.driver, n.subnet, n.gateway ?? "-", String(n.members.length), flags.join(",")];
}

export function registerNetwork(program: Command, ctx: CliContext): void {
  const network = program.command("network").description("manage networks between VMs: create, ls, inspect, rm, up, down, tcpdump");

  network
    .command("create")
    .description("create a network: private (rootless L2 on loopback multicast), bridge (root: Linux bridge + TAPs), or link (two VMs)")
    .argument("<name>")
    .option("--driver <driver>", "private (default), bridge or link")
    .option("--subnet <cidr>", "IPv4 subnet (default: a free /24 in 10.90.0.0/16)")
    .option("--gateway <ip>", "router address (bridge: the host's address on the bridge, default the first host address)")
    .option("--masquerade", "bridge: NAT the subnet out of the host's default route")
    .option("--internal", "bridge: the host neither routes nor NATs for this network")
    .option("--bridge-name <ifname>", "bridge: the Linux bridge's name (default skb-NAME)")
    .action(async (name: string, flags: { driver?: string; subnet?: string; gateway?: string; masquerade?: boolean; internal?: boolean; bridgeName?: string }) => {
      const driver = driverFlag(flags.driver);
      const info = await (await networkClient(ctx)).create({
        name,
        ...(driver === undefined ? {} : { driver }),
        ...(flags.subnet === undefined ? {} : { subnet: flags.subnet }),
        ...(flags.gateway === undefined ? {} : { gateway: flags.gateway }),
        masquerade: flags.masquerade === true,
        internal: flags.internal === true,
        ...(flags.bridgeName === undefined ? {} : { bridgeName: flags.bridgeName }),
      });
      if (ctx.flags.json) process.stdout.write(JSON.stringify(info, null, 2) + "\n");
      else process.stdout.write(`${info.name}\n`);
    });

  network
    .command("ls")
    .description("list networks")
    .option("-q, --quiet", "only names")
    .action(async (flags: { quiet?: boolean }) => {
      const nets = await (await networkClient(ctx)).list();
      if (ctx.flags.json) process.stdout.write(JSON.stringify(nets, null, 2) + "\n");
      else if (flags.quiet === true) process.stdout.write(nets.map((n) => `${n.name}\n`).join(""));
      else process.stdout.write(table(["NAME", "DRIVER", "SUBNET", "GATEWAY", "VMS", "OPTIONS"], nets.map(summary)));
    });

  network
    .command("inspect")
    .description("everything about networks, as JSON: subnet, gateway, host side, and each VM's address and MAC")
    .argument("<names...>")
    .action(async (names: string[]) => {
      const networks = await networkClient(ctx);
      const infos = [];
      for (const name of names) infos.push(await networks.inspect(name));
      process.stdout.write(JSON.stringify(infos, null, 2) + "\n");
    });

  network
    .command("rm")
    .description("remove networks (and their bridges and NAT rules); refused while VMs are on them")
    .argument("<names...>")
    .action(async (names: string[]) => {
      const networks = await networkClient(ctx);
      for (const name of names) {
        await networks.remove(name);
        process.stdout.write(`${name}\n`);
      }
    });

  network
    .command("up")
    .description("create the bridges and NAT rules of bridge networks (all, or those named), e.g. after a reboot")
    .argument("[names...]")
    .action(async (names: string[]) => {
      for (const net of await (await networkService(ctx)).up(names)) process.stdout.write(`${net.name}\n`);
    });

  network
    .command("down")
    .description("remove the bridges and NAT rules of bridge networks (all, or those named); the networks stay defined")
    .argument("[names...]")
    .action(async (names: string[]) => {
      for (const net of await (await networkService(ctx)).down(names)) process.stdout.write(`${net.name}\n`);
    });

  network
    .command("tcpdump")
    .description("show the frames on a network as tcpdump does, or write them as pcap (-w); ends on ^C, SIGTERM or after -c")
    .argument("<name>")
    .argument("[filter...]", "a pcap-filter(7) expression, e.g. icmp, or host 10.90.0.2 and tcp port 80")
    .option("-w, --write <file>", "write pcap to FILE instead of text ('-': pcap on stdout)")
    .option("-c, --count <n>", "stop after N packets that pass the filter")
    .action(async (name: string, filter: string[], flags: { write?: string; count?: string }) => {
      if (flags.count !== undefined && !/^[1-9]\d{0,8}$/.test(flags.count)) {
        throw new SkiffError("ERR_SKIFF_USAGE", `packet count must be a positive whole number, not ${JSON.stringify(flags.count)}`, { place: "-c", hint: "e.g. -c 10" });
      }
      // main's SIGTERM handler exits at once; a capture must first take what it set up (a QEMU filter) away again.
      let capture: Capture | undefined;
      let signalled = false;
      const onSignal = (): void => {
        if (signalled) process.exit(130); // a second ^C: do not wait for the cleanup
        signalled = true;
        capture?.stop();
      };
      const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
      const saved = signals.map((sig) => [sig, process.listeners(sig)] as const);
      for (const sig of signals) {
        process.removeAllListeners(sig);
        process.on(sig, onSignal);
      }
      const onStdoutError = (): void => capture?.stop(); // e.g. `| head` closed the pipe
      process.stdout.on("error", onStdoutError);
      try {
        capture = await (await networkService(ctx)).capture({
          network: name,
          filter,
          format: flags.write === undefined ? "text" : "pcap",
          ...(flags.count === undefined ? {} : { count: Number(flags.count) }),
          onNotice: (line) => process.stderr.write(`${line}\n`),
        });
        if (signalled) capture.stop();
        if (flags.write === undefined || flags.write === "-") {
          capture.output.pipe(process.stdout, { end: false });
          await new Promise((resolve) => capture!.output.once("close", resolve));
        } else {
          let file: WriteStream;
          try {
            file = await openForWriting(flags.write);
          } catch (err) {
            capture.stop();
            await capture.done.catch(() => undefined);
            throw err;
          }
          const { pipeline } = await import("node:stream/promises");
          await pipeline(capture.output, file);
        }
        const summary = await capture.done;
        if (summary.dropped > 0) process.stderr.write(`${summary.dropped} of ${summary.frames} frames dropped: the output did not keep up\n`);
      } finally {
        process.stdout.off("error", onStdoutError);
        for (const [sig, listeners] of saved) {
          process.off(sig, onSignal);
          for (const l of listeners) process.on(sig, l);
        }
      }
    });

  program
    .command("port")
    .description("list a VM's port forwards (host -> guest)")
    .argument("<name>")
    .action(async (name: string) => {
      const forwards = await (await ctx.client()).listForwards(name);
      if (ctx.flags.json) process.stdout.write(JSON.stringify(forwards, null, 2) + "\n");
      else process.stdout.write(forwards.map((f) => `${f.guestPort}/${f.protocol} -> ${f.hostAddress}:${f.hostPort}${f.origin === "runtime" ? " (added)" : ""}\n`).join(""));
    });

  program
    .command("port-forward")
    .description("add a port forward to a running VM ([ip:]host:guest[/proto]), or --remove one added so")
    .argument("<name>")
    .argument("<forward>", "[ip:]hostPort:guestPort[/tcp|udp]")
    .option("--remove", "drop a forward added with port-forward")
    .action(async (name: string, spec: string, flags: { remove?: boolean }) => {
      const skiff = await ctx.client();
      const { formatForward, parsePublish } = await import("../../index.js");
      const forward = parsePublish(spec, "FORWARD");
      const after = await skiff.changeForward(name, forward, { remove: flags.remove === true });
      if (ctx.flags.json) process.stdout.write(JSON.stringify(after, null, 2) + "\n");
      else if (flags.remove !== true) {
        const added = after.find((f) => f.origin === "runtime" && f.guestPort === forward.guestPort && f.protocol === forward.protocol && (forward.hostPort === 0 || f.hostPort === forward.hostPort));
        if (added !== undefined) process.stdout.write(`${formatForward(added)}\n`);
      }
    });
}

function openForWriting(path: string): Promise<WriteStream> {
  return new Promise((resolve, reject) => {
    const stream = createWriteStream(path);
    stream.once("open", () => resolve(stream));
    stream.once("error", (err: NodeJS.ErrnoException) =>
      reject(new SkiffError("ERR_SKIFF_BAD_PATH", `cannot write ${path} (${err.code ?? err.message})`, { place: "-w", hint: "give a file in a directory that exists and is writable" })),
    );
  });
}
