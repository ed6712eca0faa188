/**
 * pause and unpause, with the guest's clock. QMP `stop` stops the guest's
 * clock with its CPUs, so a guest paused for minutes comes back minutes
 * behind (a restore and a hibernated start set it, identity.ts; a plain
 * `cont` does not). `pause` notes when it stopped the guest; `unpause`
 * sends the host's clock when the pause lasted longer than `clockSlackMs`,
 * or for as long as nobody knows (a guest a full disk stopped). Best effort
 * with a bounded wait: a guest that does not answer still runs, and says so
 * in a warning, never in a failed unpause.
 */
import { progress, type EngineContext } from "../engine/context.js";
import { guestPaused, pauseGuest, resumeGuest } from "../engine/pause.js";
import type { VmRecord } from "../store/store.js";
import { sendGuestClock } from "./identity.js";

/** A pause shorter than this leaves the clock behind by less than a test or a human notices; no message then. */
export const clockSlackMs = 1_000;

/** How long unpause waits for the guest to take its clock (the agent port, then its answer). */
const clockBudgetMs = 3_000;

/** Whether an unpause should set the guest's clock: after a pause of unknown or more than `clockSlackMs` length. */
export function clockNeedsSetting(pausedAt: string | undefined, nowMs: number): boolean {
  if (pausedAt === undefined) return true;
  const stood = nowMs - Date.parse(pausedAt);
  return !Number.isFinite(stood) || stood >= clockSlackMs;
}

/** Stop the guest's CPUs, noting when (a guest paused already keeps its first time). */
export async function pauseVm(ctx: EngineContext, record: VmRecord): Promise<void> {
  const before = await guestPaused(record);
  await pauseGuest(record);
  if (before === undefined) await ctx.store.updateState(record.id, { pausedAt: new Date().toISOString() });
}

/** Let a paused guest run again and, after a long pause, set its clock; a running guest is left alone. */
export async function unpauseVm(ctx: EngineContext, record: VmRecord): Promise<void> {
  const { pausedAt } = await ctx.store.readState(record.id);
  const resumed = await resumeGuest(record);
  if (pausedAt !== undefined) await ctx.store.updateState(record.id, { pausedAt: undefined });
  if (!resumed || !clockNeedsSetting(pausedAt, Date.now())) return;
  const t0 = Date.now();
  try {
    await sendGuestClock(ctx, record, clockBudgetMs);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    progress(ctx, record.name, "warning", `${record.name} runs again, but its clock was not set (it is behind by the pause): ${why}`, t0);
  }
}
