/**
 * A layer build's log: every step's command and output go to one file
 * (`<cache>/layers/<hash>.log`), and the last lines of the current step are
 * kept for the error when it fails.
 */
import { createWriteStream, type WriteStream } from "node:fs";
import { Writable } from "node:stream";

const tailBytes = 8192;

export class BuildLog {
  readonly path: string;
  readonly #file: WriteStream;
  #tail = "";
  readonly #start = performance.now();

  constructor(path: string) {
    this.path = path;
    this.#file = createWriteStream(path, { flags: "w" });
  }

  /** A line of skiff's own, with the seconds since the build began ("==> 12.3 s redis: packages: …"). */
  note(text: string): void {
    this.#file.write(`==> ${((performance.now() - this.#start) / 1000).toFixed(1)} s ${text}\n`);
  }

  /** Where a step's output goes; starts a fresh tail. */
  output(): Writable {
    this.#tail = "";
    return new Writable({
      write: (chunk: Buffer, _enc, done) => {
        this.#tail = (this.#tail + chunk.toString("utf8")).slice(-tailBytes);
        this.#file.write(chunk, () => done());
      },
    });
  }

  /** The last `lines` lines of the current step's output. */
  tail(lines = 20): string {
    return this.#tail.split("\n").filter((l) => l.trim() !== "").slice(-lines).join("\n");
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#file.end(resolve));
  }
}
