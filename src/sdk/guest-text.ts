/**
 * What a guest sends back is hostile data: a guest's root can make any
 * process print anything. Output is collected up to a bound, names are
 * checked before they reach a caller, and the guest's own words in an error
 * message are cut short and have their control characters escaped, so that
 * nothing a guest prints can move a terminal's cursor or forge a line.
 */

/** Collects a stream's bytes up to `limit`; callbacks get every chunk as text, decoded across chunk boundaries. */
export class OutputBuffer {
  readonly #chunks: Uint8Array[] = [];
  readonly #decoder = new TextDecoder("utf-8");
  #size = 0;
  #truncated = false;

  constructor(readonly limit: number) {}

  /** Keep what fits and return the chunk as text (for onStdout / onStderr). */
  push(chunk: Uint8Array): string {
    const room = this.limit - this.#size;
    if (chunk.length > room) this.#truncated = true;
    const kept = chunk.length > room ? chunk.subarray(0, Math.max(0, room)) : chunk;
    if (kept.length > 0) {
      this.#chunks.push(Uint8Array.from(kept));
      this.#size += kept.length;
    }
    return this.#decoder.decode(chunk, { stream: true });
  }

  /** More arrived than the limit (the rest was dropped). */
  get truncated(): boolean {
    return this.#truncated;
  }

  get size(): number {
    return this.#size;
  }

  /** A plain Uint8Array (a Buffer's toString would decode it as text). */
  bytes(): Uint8Array {
    const all = Buffer.concat(this.#chunks);
    return new Uint8Array(all.buffer, all.byteOffset, all.byteLength);
  }

  text(): string {
    return Buffer.concat(this.#chunks).toString("utf8");
  }
}

/** C0 controls, DEL and C1 controls: what a terminal may take as a command. */
const controlChars = /[\u0000-\u001f\u007f-\u009f]/;
const controlCharsAll = /[\u0000-\u001f\u007f-\u009f]/g;

/** Why a directory entry name from the guest is not handed to the caller, or undefined when it is fine. */
export function entryNameProblem(name: string): string | undefined {
  if (name === "" || name === "." || name === "..") return "not an entry name";
  if (name.includes("/")) return "it holds a slash";
  if (controlChars.test(name)) return "it holds control characters";
  if (name.includes("\uFFFD")) return "it is not valid UTF-8";
  return undefined;
}

/** The guest's words for a message: one line, at most `max` characters, control characters escaped. */
export function guestWords(text: string, max = 300): string {
  const line = text.trim().replace(controlCharsAll, (c) => (c === "\n" ? " | " : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`));
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}
