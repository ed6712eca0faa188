/**
 * Provisioners, in order, through the guest channel: `shell` (inline, or a
 * host script uploaded and executed) and `file` (copied in). Every step's
 * command and output go to the VM's provision log and, live, to whoever
 * listens; the first step that fails ends the run with the step, the command
 * and the exit code.
 */
import { appendFile } from "node:fs/promises";
import { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { SkiffError } from "../pure.js";
import type { AgentConnection } from "../index.js";
import type { ProvisionStep } from "./types.js";

export interface ProvisionHooks {
  /** A step begins: "shell: apt-get install -y nginx" (1-based index). */
  onStep?: (index: number, total: number, what: string) => void;
  /** Output as it arrives. */
  onOutput?: (stream: "stdout" | "stderr", text: string) => void;
}

/** How a step is shown: in the log, the terminal and errors. */
export function describeStep(step: ProvisionStep): string {
  if (step.kind === "file") return `file: ${step.source} -> ${step.destination}`;
  return "inline" in step ? `shell: ${oneLine(step.inline)}` : `shell: script ${step.script}`;
}

function oneLine(text: string): string {
  const first = text.trim().split("\n")[0] ?? "";
  return first.length > 80 || text.trim().includes("\n") ? `${first.slice(0, 77)}...` : first;
}

/** Where a script goes in the guest; removed after it ran. */
function scriptPath(index: number): string {
  return `/tmp/skiff-provision-${index}.sh`;
}

export async function runProvisioners(
  conn: AgentConnection,
  steps: readonly ProvisionStep[],
  opts: { vm: string; logPath: string } & ProvisionHooks,
): Promise<void> {
  const log = (text: string) => appendFile(opts.logPath, text);
  await log(`==> ${new Date().toISOString()} provisioning ${opts.vm} (${steps.length} step${steps.length === 1 ? "" : "s"})\n`);
  for (const [i, step] of steps.entries()) {
    const what = describeStep(step);
    opts.onStep?.(i + 1, steps.length, what);
    await log(`==> step ${i + 1}/${steps.length}: ${what}\n`);
    const code = await runStep(conn, step, i + 1, opts);
    await log(`==> step ${i + 1} exited with ${code}\n`);
    if (code !== 0) {
      throw new SkiffError("ERR_SKIFF_PROVISION_FAILED", `${opts.vm}: provision step ${i + 1} (${what}) exited with code ${code}`, {
        place: step.place,
        hint: `see its output with \`skiff logs --provision ${opts.vm}\`; fix the step and run \`skiff provision\``,
        details: { vm: opts.vm, step: i + 1, command: what, exitCode: code },
      });
    }
  }
  await log(`==> ${new Date().toISOString()} provisioned ${opts.vm}\n`);
}

async function runStep(conn: AgentConnection, step: ProvisionStep, index: number, opts: { logPath: string } & ProvisionHooks): Promise<number> {
  if (step.kind === "file") {
    try {
      await conn.copyTo(step.source, step.destination);
      return 0;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      await appendFile(opts.logPath, `${message}\n`);
      opts.onOutput?.("stderr", `${message}\n`);
      return 1;
    }
  }
  let argv: string[];
  if ("inline" in step) {
    argv = ["sh", "-c", step.inline];
  } else {
    const target = scriptPath(index);
    await conn.copyTo(step.script, target);
    // The script's own #! line decides its interpreter.
    argv = ["sh", "-c", `chmod +x ${target} && ${target}; rc=$?; rm -f ${target}; exit $rc`];
  }
  const sink = (stream: "stdout" | "stderr") =>
    new Writable({
      write(chunk: Buffer, _enc, done) {
        const text = chunk.toString("utf8");
        opts.onOutput?.(stream, text);
        appendFile(opts.logPath, text).then(() => done(), done);
      },
    });
  const stdout = sink("stdout");
  const stderr = sink("stderr");
  // Listened to from the start: a log that cannot be written (a full disk) fails the step instead of an 'error' nobody hears.
  const written = Promise.all([finished(stdout), finished(stderr)]);
  written.catch(() => undefined);
  const result = await conn.exec({ argv, cwd: "/" }, { stdout, stderr }).finally(() => {
    stdout.end();
    stderr.end();
  });
  // The step's last output and its exit come together: the log's next line waits for that output, still being appended.
  await written;
  return result.code;
}
