/**
 * ssh, ssh-config, proxy and top: the SSH side of the agent channel.
 * `skiff proxy NAME` is the ProxyCommand that `skiff ssh-config` writes, so
 * stock OpenSSH (ssh, scp, sftp, VS Code Remote-SSH) reaches the guest over
 * the same virtio-serial port skiff uses, authenticated with the VM's keys.
 * A cloud image's own sshd is on a loopback forward instead: its block names
 * 127.0.0.1 and the port, no proxy needed (`skiff proxy` relays to it too).
 */
import type { Command } from "commander";
import { realpathSync } from "node:fs";
import type { Socket } from "node:net";
import type { SshEndpoint } from "../../index.js";
import { guestProcesses, shellQuote } from "../../pure.js";
import type { CliContext } from "../context.js";
import { attachSession } from "../session.js";

/** A value in an OpenSSH config file: `%` is ssh's token escape, and a value with blanks is quoted. */
function sshValue(value: string): string {
  const escaped = value.replaceAll("%", "%%");
  return /[\s"]/.test(escaped) ? `"${escaped.replaceAll('"', '\\"')}"` : escaped;
}

export interface SshConfigOptions {
  name: string;
  dir: string;
  /** How to run skiff: [node, main.js], or ["skiff"]. */
  skiffArgv: string[];
  /**
   * SKIFF_HOME (and SKIFF_CACHE) the block was made for: ssh runs the
   * ProxyCommand from the user's shell, where skiff's environment may not
   * be set, and the proxy must find the VM in the same home.
   */
  env: Record<string, string>;
  ssh?: SshEndpoint | undefined;
}

export function sshConfigBlock(opts: SshConfigOptions): string {
  // ssh hands the ProxyCommand to the user's shell after expanding its % tokens: quote for the shell, then escape %.
  const envWords = Object.entries(opts.env).map(([k, v]) => `${k}=${shellQuote(v)}`);
  const proxy = ["env", ...envWords, ...[...opts.skiffArgv, "proxy", opts.name].map(shellQuote)].join(" ").replaceAll("%", "%%");
  const route =
    opts.ssh === undefined
      ? [`  HostName ${opts.name}`, "  User root", `  ProxyCommand ${proxy}`]
      : [`  HostName ${opts.ssh.host}`, `  Port ${opts.ssh.port}`, `  User ${opts.ssh.user}`];
  return [
    `Host ${opts.name} skiff-${opts.name}`,
    ...route,
    `  IdentityFile ${sshValue(`${opts.dir}/id_ed25519`)}`,
    "  IdentitiesOnly yes",
    `  UserKnownHostsFile ${sshValue(`${opts.dir}/known_hosts`)}`,
    `  HostKeyAlias skiff-${opts.name}`,
    "  StrictHostKeyChecking yes",
    "",
  ].join("\n");
}

function skiffArgv(): string[] {
  const script = process.argv[1] ?? "skiff";
  try {
    return [process.execPath, realpathSync(script)];
  } catch {
    return ["skiff"];
  }
}

/** The home (and cache, when it was moved apart) a proxy must use to find the VMs listed. */
export function proxyEnv(skiff: { home: string; cacheDir: string }, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return { SKIFF_HOME: skiff.home, ...(env.SKIFF_CACHE ? { SKIFF_CACHE: skiff.cacheDir } : {}) };
}

export function registerSsh(program: Command, ctx: CliContext): void {
  program
    .command("ssh")
    .description("log in to a VM (or run a command) over SSH on the agent channel")
    .argument("<name>")
    .argument("[command...]")
    .passThroughOptions()
    .action(async (name: string, command: string[]) => {
      const conn = await (await ctx.skiff()).connect(name);
      const interactive = command.length === 0;
      try {
        // A login gets a terminal when we have one; a command gets one only if stdin is a terminal, as with ssh.
        const tty = process.stdin.isTTY === true;
        const req = interactive ? { argv: [] } : { argv: ["/bin/sh", "-c", command.join(" ")] };
        ctx.exitCode = await attachSession(conn, req, { interactive: true, tty });
      } finally {
        await conn.close();
      }
    });

  program
    .command("ssh-config")
    .description("print OpenSSH config for VMs, so `ssh NAME`, scp, sftp and VS Code work")
    .argument("[names...]", "VMs (default: all)")
    .action(async (names: string[]) => {
      const skiff = await ctx.skiff();
      const infos = names.length === 0 ? await skiff.list({ all: true }) : await Promise.all(names.map((n) => skiff.inspect(n)));
      const argv = skiffArgv();
      const env = proxyEnv(skiff);
      const blocks = await Promise.all(
        infos.map(async (i) => sshConfigBlock({ name: i.name, dir: i.dir, skiffArgv: argv, env, ssh: await skiff.sshEndpoint(i.id) })),
      );
      process.stdout.write(blocks.join("\n"));
    });

  program
    .command("proxy")
    .description("relay stdin/stdout to a VM's SSH server (the ProxyCommand of ssh-config)")
    .argument("<name>")
    .action(async (name: string) => {
      const stream = await (await ctx.skiff()).proxy(name);
      try {
        await relay(stream.socket);
      } finally {
        await stream.release();
      }
    });

  program
    .command("top")
    .description("show the processes running in a VM")
    .argument("<name>")
    .action(async (name: string) => {
      const conn = await (await ctx.skiff()).connect(name);
      try {
        process.stdout.write(await guestProcesses(conn, name));
      } finally {
        await conn.close();
      }
    });
}

/** Pipe stdin/stdout to `sock` until either side ends. */
function relay(sock: Socket): Promise<void> {
  return new Promise<void>((resolve) => {
    process.stdin.pipe(sock);
    sock.pipe(process.stdout);
    sock.resume();
    sock.on("close", () => resolve());
    process.stdin.on("end", () => sock.end());
  });
}
