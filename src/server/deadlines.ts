/**
 * The server's half of the sandbox timeout (Sandbox.create's timeoutMs, E2B's
 * "the sandbox is killed when its time is up"): a watcher that removes
 * every VM of the home past its deadline (the `skiff.sdk.timeout-ms` label,
 * src/api/deadline.ts), whether or not any client is still there.
 *
 * It looks at the VMs (one `list`) when the server starts (a sandbox that
 * expired while no server ran goes then), at the soonest deadline it saw or
 * was told of (`note`: the VMs a start, restore, fork or new timeout served
 * answered with), and at least every `rescanMs` for VMs that other
 * processes of the home made or changed. Each look reads the labels afresh,
 * so a deadline moved since is honoured, sooner or later. A look asks every
 * running VM's QEMU whether it is paused (QMP): it is not made for each
 * request, only when a deadline is due or the rescan.
 */
import type { Skiff, VmInfo } from "../index.js";
import { endOf, expired } from "../api/deadline.js";

export interface DeadlineWatcherOptions {
  /** Look at least this often (default 10 s). */
  rescanMs?: number;
  /** Told each VM removed, after its removal (the server drops its agent connection). */
  onRemoved?: (name: string) => void;
  /** Told what a look failed with; the watcher goes on. */
  onError?: (err: unknown) => void;
}

const defaultRescanMs = 15_000;
const minGapMs = 200;

export class DeadlineWatcher {
  readonly #skiff: Skiff;
  readonly #rescanMs: number;
  readonly #opts: DeadlineWatcherOptions;
  #timer: NodeJS.Timeout | undefined;
  #nextAt = Infinity;
  #looking: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(skiff: Skiff, opts: DeadlineWatcherOptions = {}) {
    this.#skiff = skiff;
    this.#rescanMs = opts.rescanMs ?? defaultRescanMs;
    this.#opts = opts;
  }

  /** Look now, then on schedule. */
  start(): void {
    this.#schedule(0);
  }

  /** VMs as a request left them: a look at the end of each that has one (sooner ones are kept). */
  note(vms: readonly VmInfo[]): void {
    for (const vm of vms) {
      const end = endOf(vm);
      if (end !== undefined) this.#schedule(end.getTime() - Date.now());
    }
  }

  /** No more looks; waits for one under way. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#looking;
  }

  /** A look at `delayMs` from now, unless one is due sooner. */
  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    const at = Date.now() + Math.max(0, delayMs);
    if (at >= this.#nextAt) return;
    clearTimeout(this.#timer);
    this.#nextAt = at;
    this.#timer = setTimeout(() => this.#look(), at - Date.now());
    // The watcher alone must not keep the process alive.
    this.#timer.unref();
  }

  #look(): void {
    this.#timer = undefined;
    this.#nextAt = Infinity;
    if (this.#looking !== undefined) {
      // One look at a time; one more after it, for what changed meanwhile.
      this.#again = true;
      return;
    }
    this.#looking = this.#reap()
      .catch((err: unknown) => this.#opts.onError?.(err))
      .finally(() => {
        this.#looking = undefined;
        if (this.#again) {
          this.#again = false;
          this.#schedule(0);
        }
      });
  }

  async #reap(): Promise<void> {
    const vms = await this.#skiff.list({ all: true });
    const now = Date.now();
    const gone = new Set(expired(vms, now));
    for (const name of gone) {
      if (this.#stopped) return;
      try {
        await this.#skiff.remove(name, { force: true });
        this.#opts.onRemoved?.(name);
      } catch (err) {
        // Removed by someone else meanwhile is what we wanted; anything else is told and tried again next look.
        if ((err as { code?: string }).code !== "ERR_SKIFF_VM_NOT_FOUND") this.#opts.onError?.(err);
      }
    }
    const soonest = Math.min(...vms.filter((vm) => !gone.has(vm.name)).map((vm) => endOf(vm)?.getTime() ?? Infinity));
    // Not sooner than minGapMs: a VM whose removal failed is not tried in a tight loop.
    this.#schedule(Math.max(minGapMs, Math.min(soonest - Date.now(), this.#rescanMs)));
  }
}
