/**
 * `docker pull`-like progress for image pulls: one line per layer with bytes
 * and speed, redrawn in place on a terminal; plain lines (one per layer
 * state change) when stderr is not a terminal.
 */
import { formatBytes } from "../pure.js";
import type { PullEvent } from "../index.js";

interface LayerState {
  short: string;
  size: number;
  received: number;
  status: "waiting" | "downloading" | "done" | "cached";
  startedAt: number;
}

export function pullReporter(stream: NodeJS.WriteStream = process.stderr): (e: PullEvent) => void {
  const layers = new Map<string, LayerState>();
  const order: string[] = [];
  const tty = stream.isTTY === true;
  let drawn = 0;
  let lastDraw = 0;

  const line = (l: LayerState): string => {
    switch (l.status) {
      case "cached":
        return `${l.short}: Already exists`;
      case "done":
        return `${l.short}: Pull complete (${formatBytes(l.size)})`;
      case "waiting":
        return `${l.short}: Waiting`;
      case "downloading": {
        const secs = Math.max(0.001, (Date.now() - l.startedAt) / 1000);
        return `${l.short}: Downloading ${formatBytes(l.received)}/${formatBytes(l.size)} ${formatBytes(l.received / secs)}/s`;
      }
    }
  };

  const redraw = (force: boolean) => {
    if (!tty) return;
    const now = Date.now();
    if (!force && now - lastDraw < 100) return;
    lastDraw = now;
    if (drawn > 0) stream.write(`\x1b[${drawn}A`);
    for (const digest of order) stream.write(`\x1b[2K${line(layers.get(digest) as LayerState)}\n`);
    drawn = order.length;
  };

  return (e) => {
    switch (e.type) {
      case "resolved":
        stream.write(`Pulling ${e.ref} (${e.manifestDigest.slice(0, 19)})\n`);
        for (const l of e.layers) {
          layers.set(l.digest, { short: l.digest.slice(7, 19), size: l.size, received: 0, status: "waiting", startedAt: Date.now() });
          order.push(l.digest);
        }
        redraw(true);
        break;
      case "layer-cached": {
        const l = layers.get(e.digest);
        if (l) l.status = "cached";
        if (!tty && l) stream.write(line(l) + "\n");
        redraw(true);
        break;
      }
      case "layer-progress": {
        const l = layers.get(e.digest);
        if (l) {
          if (l.status === "waiting") {
            l.status = "downloading";
            l.startedAt = Date.now();
          }
          l.received = e.received;
        }
        redraw(false);
        break;
      }
      case "layer-done": {
        const l = layers.get(e.digest);
        if (l) {
          l.status = "done";
          l.received = l.size;
        }
        if (!tty && l) stream.write(line(l) + "\n");
        redraw(true);
        break;
      }
      case "done":
        redraw(true);
        stream.write(`Digest: ${e.manifestDigest}\nStatus: downloaded ${e.ref}\n`);
        break;
    }
  };
}
