/**
 * Read a tar stream entry by entry, one at a time, with backpressure: the
 * next header is parsed only after `onEntry` has finished with the
 * previous entry (and drained its data). tar-stream does the parsing
 * (ustar, GNU long names, PAX).
 *
 * tar-stream is CommonJS; default import, then destructure.
 */
import tarStream, { type Header } from "tar-stream";

const { extract } = tarStream;

export type TarHeader = Header;

/**
 * An entry's data; iterate it for the bytes. Entries whose data is not read
 * must be drained. `offset` is where the entry's (last) header block starts
 * in the plain tar, so its data starts at `offset + 512`.
 */
export type TarEntry = AsyncIterable<Uint8Array> & { offset: number };

/** What a tar can be read from: a Node stream, a streamx stream (tar-stream's pack), any byte iterable that can be stopped. */
export type TarInput = AsyncIterable<Uint8Array> & { destroy(error?: Error): unknown };

/** PAX records of a header (tar-stream decodes them as UTF-8 strings), or an empty object. */
export function paxOf(header: TarHeader): Record<string, string> {
  const pax = (header as { pax?: unknown }).pax;
  return typeof pax === "object" && pax !== null ? (pax as Record<string, string>) : {};
}

export async function drain(entry: TarEntry): Promise<void> {
  for await (const _ of entry) {
    // discard
  }
}

/**
 * Feed `input` to a tar parser and call `onEntry` for each member in order.
 * `onChunk` sees every byte of `input` (a hash of the plain tar).
 * Rejects with the first error of the input, the parser or `onEntry`.
 */
export async function readTar(
  input: TarInput,
  onEntry: (header: TarHeader, data: TarEntry) => Promise<void>,
  onChunk?: (chunk: Buffer) => void,
): Promise<void> {
  const parser = extract();
  const feeding = (async () => {
    try {
      for await (const chunk of input) {
        const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        onChunk?.(bytes);
        if (!parser.write(bytes)) await drained(parser);
        if (parser.destroyed) return;
      }
      parser.end(undefined); // streamx types want an argument; undefined ends without writing
    } catch (err) {
      parser.destroy(err as Error);
      throw err;
    }
  })();
  feeding.catch(() => {});
  try {
    for await (const entry of parser) {
      await onEntry(entry.header, entry as unknown as TarEntry);
    }
  } catch (err) {
    input.destroy();
    throw err;
  }
  await feeding;
}

function drained(stream: { once(event: string, fn: () => void): unknown; off(event: string, fn: () => void): unknown }): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.once("drain", done);
    stream.once("close", done);
  });
}
