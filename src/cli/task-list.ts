/**
 * A project verb's tasks on stderr. On a terminal: a live list, one line per
 * task (building, booting, provisioning, healthy…) redrawn in place, with
 * provisioner output scrolling above it. Elsewhere: one plain line per
 * state change, and output lines prefixed with the VM's name.
 */
import type { OutputEvent, TaskEvent, TaskState } from "../project/events.js";

const done: ReadonlySet<TaskState> = new Set(["running", "unchanged", "provisioned", "healthy", "built", "stopped", "removed"]);
const bad: ReadonlySet<TaskState> = new Set(["failed", "unhealthy"]);
const frames = ["|", "/", "-", "\\"];

export interface TaskReporter {
  task(e: TaskEvent): void;
  output(e: OutputEvent): void;
  /** Draw the final state and stop redrawing. */
  close(): void;
}

export function taskReporter(stream: NodeJS.WriteStream = process.stderr, live = stream.isTTY === true): TaskReporter {
  return live ? new LiveList(stream) : new PlainLines(stream);
}

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

class PlainLines implements TaskReporter {
  readonly #partial = new Map<string, string>();
  constructor(readonly stream: NodeJS.WriteStream) {}

  task(e: TaskEvent): void {
    this.stream.write(`[${secs(e.elapsedMs).padStart(6)}] ${e.state === "warning" ? "warning: " : ""}${e.message}\n`);
  }

  output(e: OutputEvent): void {
    // Whole lines only, each with its VM's name, so parallel provisioners do not interleave mid-line.
    const text = (this.#partial.get(e.vm) ?? "") + e.text;
    const lines = text.split("\n");
    this.#partial.set(e.vm, lines.pop() ?? "");
    for (const line of lines) this.stream.write(`${e.vm} | ${line}\n`);
  }

  close(): void {
    for (const [vm, rest] of this.#partial) if (rest !== "") this.stream.write(`${vm} | ${rest}\n`);
    this.#partial.clear();
  }
}

class LiveList implements TaskReporter {
  readonly #tasks = new Map<string, TaskEvent>();
  readonly #partial = new Map<string, string>();
  #drawn = 0;
  #frame = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(readonly stream: NodeJS.WriteStream) {
    this.#timer = setInterval(() => this.#redraw(), 120);
    this.#timer.unref();
  }

  task(e: TaskEvent): void {
    if (e.state === "warning") {
      this.#above(`warning: ${e.message}\n`);
      return;
    }
    this.#tasks.set(e.task, e);
    this.#redraw();
  }

  output(e: OutputEvent): void {
    const text = (this.#partial.get(e.vm) ?? "") + e.text;
    const lines = text.split("\n");
    this.#partial.set(e.vm, lines.pop() ?? "");
    if (lines.length > 0) this.#above(lines.map((l) => `${e.vm} | ${l}\n`).join(""));
  }

  close(): void {
    clearInterval(this.#timer);
    this.#redraw();
    this.#drawn = 0;
  }

  /** Print `text` above the list, then draw the list again under it. */
  #above(text: string): void {
    this.#clear();
    this.stream.write(text);
    this.#drawn = 0;
    this.#redraw();
  }

  #clear(): void {
    if (this.#drawn > 0) this.stream.write(`\x1b[${this.#drawn}A\x1b[J`);
  }

  #redraw(): void {
    const width = this.stream.columns ?? 100;
    this.#frame = (this.#frame + 1) % frames.length;
    const lines = [...this.#tasks.values()].map((t) => {
      const mark = done.has(t.state) ? "✔" : bad.has(t.state) ? "✘" : frames[this.#frame];
      const line = `${mark} ${t.task.padEnd(24)} ${t.state.padEnd(12)} ${t.message}`;
      return line.length > width - 1 ? line.slice(0, width - 2) + "…" : line;
    });
    this.#clear();
    if (lines.length > 0) this.stream.write(lines.join("\n") + "\n");
    this.#drawn = lines.length;
  }
}
