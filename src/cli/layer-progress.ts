/**
 * A layer build's progress on stderr, one plain line per step (readable in
 * a terminal and in a CI log alike): "[2/2] redis: packages: redis-server".
 */
import { formatDuration } from "../pure.js";
import type { LayerEvent } from "../index.js";

export function layerReporter(stream: NodeJS.WritableStream = process.stderr): (e: LayerEvent) => void {
  const t0 = Date.now();
  const at = () => `+${formatDuration(Date.now() - t0)}`;
  return (e) => {
    switch (e.type) {
      case "layers-cached":
        stream.write(`layers ${e.layers.join(", ")}: cached (${e.image})\n`);
        return;
      case "layers-start":
        stream.write(`building ${e.image} from ${e.base}: ${e.layers.join(", ")} (log: ${e.logPath})\n`);
        return;
      case "layers-vm":
        stream.write(`${at()} build VM: ${e.what === "boot" ? "booting" : e.what === "stop" ? "powering off" : "committing its disk"}\n`);
        return;
      case "layers-step":
        stream.write(`${at()} ${e.index === 0 ? "[build]" : `[${e.index}/${e.count}] ${e.layer}:`} ${e.step}: ${e.detail}\n`);
        return;
      case "layers-done":
        stream.write(`built ${e.image} in ${formatDuration(e.ms)}\n`);
        return;
    }
  };
}
