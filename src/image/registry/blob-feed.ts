/**
 * A layer's bytes handed from its download to the unpacker while they
 * arrive, so that a pull and the build of its base are one pass over the
 * network bytes rather than a download followed by a read back from the
 * store.
 *
 * The download writes every chunk after it has hashed it (blob-store.ts)
 * and ends the feed only once the whole blob has matched its digest (before
 * the fsync and rename that store it, which the pull still waits for), so a
 * reader that runs to the end has read verified bytes; one that sees an
 * error must throw its work away (the build does: its staging directory is
 * removed).
 *
 * Layers are applied in order but downloaded a few at a time, so a feed
 * nobody reads yet keeps its chunks in memory, up to a budget shared by
 * the pull. A feed that would go past it drops what it holds and is read
 * from the store once its download has finished (and verified again as it
 * is read). A feed that is being read holds its download back instead, a
 * few MiB ahead of the reader.
 */

/** Unread bytes all waiting feeds of one pull may hold. */
const defaultBudgetBytes = 64 * 1024 * 1024;
/** How far a download may run ahead of the reader of its feed. */
const readAheadBytes = 8 * 1024 * 1024;
/**
 * The reader gets the network's chunks (~64 KiB) joined into pieces of at
 * least this much: zlib and the streams after it cost per write, and a
 * pull and build of 40 MiB of gzip layers took a quarter more CPU when fed
 * the network's chunks as they came.
 */
const readPieceBytes = 512 * 1024;

/** The memory budget of the feeds of one pull. */
export class FeedPool {
  used = 0;
  constructor(readonly budgetBytes = defaultBudgetBytes) {}
}

type Mode = "waiting" | "reading" | "stored";

export class BlobFeed {
  readonly #pool: FeedPool;
  #mode: Mode = "waiting";
  #chunks: Uint8Array[] = [];
  #queued = 0;
  /** The download has matched the digest: what was pushed is all there is, and good. */
  #matched = false;
  #failure: { error: unknown } | undefined;
  /** Wakes the reader (new bytes, the match, a failure) or the writer (room again). */
  #wake: (() => void) | undefined;
  readonly #verified = settlement();
  readonly #stored = settlement();

  constructor(pool: FeedPool) {
    this.#pool = pool;
  }

  /** Resolves once the blob has matched its digest; rejects with the download's error if it fails before. */
  get verified(): Promise<void> {
    return this.#verified.promise;
  }

  /** Resolves once the blob is verified and in the store; rejects with the download's error. */
  get stored(): Promise<void> {
    return this.#stored.promise;
  }

  // The download's side.

  /** A chunk, already hashed; the promise (if any) holds the download until the reader has caught up. */
  push(chunk: Uint8Array): Promise<void> | undefined {
    if (this.#mode === "stored" || this.#matched || this.#failure) return undefined;
    this.#chunks.push(chunk);
    this.#queued += chunk.byteLength;
    this.#pool.used += chunk.byteLength;
    if (this.#mode === "waiting" && this.#pool.used > this.#pool.budgetBytes) this.release();
    this.#notify();
    if (this.#mode !== "reading" || this.#queued <= readAheadBytes) return undefined;
    return new Promise<void>((resolve) => (this.#wake = resolve));
  }

  /** The bytes pushed are the whole blob and match its digest (it is not in the store yet). */
  matched(): void {
    if (this.#matched || this.#failure) return;
    this.#matched = true;
    this.#verified.resolve();
    this.#notify();
  }

  /** The blob is verified and stored. */
  end(): void {
    if (this.#failure) return;
    this.matched();
    this.#stored.resolve();
  }

  /**
   * The download failed: before the match, a reader gets `error`; after it
   * (the store could not keep the blob) the bytes were good, and only
   * `stored` rejects.
   */
  fail(error: unknown): void {
    if (this.#failure) return;
    this.#failure = { error };
    this.#stored.reject(error);
    if (this.#matched) return;
    this.#verified.reject(error);
    this.#drop();
    this.#notify();
  }

  // The reader's side.

  /**
   * The bytes as they arrive, ending once they are verified; undefined when
   * the reader is to read the stored blob instead (after `stored`). Waits
   * until the download has said which. Only the first call can get the bytes.
   */
  async take(): Promise<AsyncIterable<Uint8Array> | undefined> {
    while (this.#mode === "waiting" && this.#queued === 0 && !this.#matched && !this.#failure) {
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
    if (this.#failure && !this.#matched) throw this.#failure.error;
    if (this.#mode !== "waiting") return undefined;
    this.#mode = "reading";
    return { [Symbol.asyncIterator]: () => this.#read() };
  }

  /**
   * No chunks from here on: the blob was in the store already, or nobody
   * will read them (the base exists, the build failed). A reader still to
   * come reads the stored blob.
   */
  release(): void {
    this.#mode = "stored";
    this.#drop();
    this.#notify();
  }

  async *#read(): AsyncGenerator<Uint8Array> {
    try {
      for (;;) {
        if (this.#failure && !this.#matched) throw this.#failure.error;
        if (this.#queued > 0 && (this.#queued >= readPieceBytes || this.#matched)) {
          yield this.#takePiece();
          continue;
        }
        if (this.#matched) return;
        if (this.#mode === "stored") throw new Error("the layer's download was released while it was being read");
        await new Promise<void>((resolve) => (this.#wake = resolve));
      }
    } finally {
      // Stopped early (the reader failed): the download must not wait for it.
      if (!this.#matched) this.release();
    }
  }

  /** The queued chunks up to about a piece's worth (at least one chunk), joined. */
  #takePiece(): Uint8Array {
    let count = 0;
    let bytes = 0;
    while (count < this.#chunks.length && (count === 0 || bytes + this.#chunks[count]!.byteLength <= readPieceBytes * 2)) {
      bytes += this.#chunks[count]!.byteLength;
      count++;
    }
    const taken = this.#chunks.splice(0, count);
    const piece = count === 1 ? taken[0]! : Buffer.concat(taken, bytes);
    this.#pool.used -= bytes;
    this.#queued -= bytes;
    if (this.#queued <= readAheadBytes) this.#notify();
    return piece;
  }

  #drop(): void {
    this.#pool.used -= this.#queued;
    this.#chunks = [];
    this.#queued = 0;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

function settlement(): { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void } {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** One feed per distinct layer digest, sharing one pool. */
export function feedsFor(digests: readonly string[], pool = new FeedPool()): Map<string, BlobFeed> {
  return new Map(digests.map((digest) => [digest, new BlobFeed(pool)]));
}
