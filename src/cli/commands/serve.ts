/**
 * skiff serve: the HTTP + WebSocket API (src/server) over this host's
 * skiff, until SIGINT or SIGTERM. Holds no lock while idle, so the CLI
 * keeps working beside it.
 */
import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { skiffVersion } from "./doctor.js";

interface ServeFlags {
  listen?: string;
  tlsCert?: string;
  tlsKey?: string;
  printToken?: boolean;
  policy?: string;
}

export function registerServe(program: Command, ctx: CliContext): void {
  program
    .command("serve")
    .description("serve the HTTP/WebSocket API (OpenAPI at /openapi.json) on a unix socket (default, 0600) or TCP with a bearer token")
    .option("--listen <addr>", "unix:PATH, HOST:PORT, [::1]:PORT, or a port alone (loopback); default unix:<home>/skiff.sock")
    .option("--tls-cert <file>", "serve HTTPS with this certificate (PEM); needs --tls-key")
    .option("--tls-key <file>", "the certificate's private key (PEM)")
    .option("--policy <file>", "the access policy of the MCP server at /mcp (YAML, as skiff mcp --policy); default: none, every tool on every VM")
    .option("--print-token", "print the token TCP clients need (made now if there is none) and exit")
    .action(async (flags: ServeFlags) => {
      const [{ SkiffError }, server, { readFile }] = await Promise.all([import("../../index.js"), import("../../server/index.js"), import("node:fs/promises")]);
      const skiff = await ctx.skiff();
      if (flags.printToken === true) {
        process.stdout.write(`${(await server.serverToken(skiff.home)).token}\n`);
        return;
      }
      if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
        throw new SkiffError("ERR_SKIFF_USAGE", "TLS needs both a certificate and its key", {
          place: flags.tlsCert === undefined ? "--tls-cert" : "--tls-key",
          hint: "give --tls-cert FILE and --tls-key FILE",
        });
      }
      const listen = server.parseListen(flags.listen, skiff.home);
      const token = listen.kind === "tcp" ? await server.serverToken(skiff.home) : undefined;
      const read = (path: string, place: string) =>
        readFile(path).catch((err: unknown) => {
          throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`, { place });
        });
      const tls = flags.tlsCert === undefined || flags.tlsKey === undefined ? undefined : { cert: await read(flags.tlsCert, "--tls-cert"), key: await read(flags.tlsKey, "--tls-key") };
      const { createMcpServer, emptyPolicy, loadPolicyFile } = await import("../../mcp/index.js");
      const policy = flags.policy === undefined ? emptyPolicy : await loadPolicyFile(flags.policy);
      for (const w of policy.warnings) process.stderr.write(`skiff: warning: mcp policy: ${w}\n`);
      const running = await server.startServer({
        skiff,
        // The MCP tools over Streamable HTTP, behind the same token; no project here (range tools work on the VMs alone).
        mounts: [server.mcpMount(() => createMcpServer(skiff, { policy }))],
        listen,
        ...(token === undefined ? {} : { token: token.token }),
        ...(tls === undefined ? {} : { tls }),
        version: skiffVersion(),
        warn: (message) => process.stderr.write(`skiff: warning: ${message}\n`),
      });
      process.stdout.write(`listening on ${running.url}\n`);
      if (token !== undefined) {
        process.stderr.write(
          token.source === "env" ? "clients need the token in SKIFF_TOKEN\n" : `clients need the token in ${token.path}${token.created ? " (made now)" : ""}; \`skiff serve --print-token\` shows it\n`,
        );
      }
      await untilSignalled();
      await running.close();
    });
}

/** Wait for SIGINT or SIGTERM, in place of main's handlers (which exit at once): the server closes first. */
function untilSignalled(): Promise<void> {
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  for (const sig of signals) process.removeAllListeners(sig);
  return new Promise((resolve) => {
    for (const sig of signals) process.once(sig, () => resolve());
  });
}
