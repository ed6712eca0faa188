/**
 * A directory as a canonical tar stream: names in byte order, depth first,
 * owners, modes, whole-second mtimes, symlinks as links, a hard-linked file
 * once and then as links to its first name, device nodes and fifos (sockets
 * cannot be archived and are left out). The directory itself is not an
 * entry: the image root is always root's 0755.
 *
 * The same directory gives the same bytes, so the stream's sha256 names
 * its content, and importing goes through the same layer code as any image.
 */
import { createReadStream, lstatSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import tarStream, { type Header } from "tar-stream";
import type { TarInput } from "../unpack/tar-read.js";

const { pack } = tarStream;

type Entry = Partial<Header> & { name: string };

const byteOrder = (a: string, b: string) => (Buffer.compare(Buffer.from(a), Buffer.from(b)) as -1 | 0 | 1);

/** Linux's dev_t split (glibc's gnu_dev_major/minor), for numbers that fit a double. */
function devNumbers(rdev: number): { devmajor: number; devminor: number } {
  const high = Math.floor(rdev / 2 ** 32);
  const low = rdev >>> 0;
  return {
    devmajor: ((low >>> 8) & 0xfff) | ((high & ~0xfff) >>> 0),
    devminor: (low & 0xff) | ((low >>> 12) & ~0xff),
  };
}

export function packDirectory(root: string): TarInput {
  const stream = pack();
  const firstNames = new Map<string, string>();

  const add = (header: Entry) =>
    new Promise<void>((resolve, reject) => {
      stream.entry(header, (err) => (err ? reject(err) : resolve()));
    });

  const addFile = async (header: Entry, path: string) => {
    let finish!: (err?: Error | null) => void;
    const written = new Promise<void>((resolve, reject) => (finish = (err) => (err ? reject(err) : resolve())));
    const sink = stream.entry(header, (err) => finish(err));
    for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
      if (!sink.write(chunk as Buffer)) await new Promise<void>((resolve) => sink.once("drain", () => resolve()));
    }
    sink.end(undefined); // streamx types want an argument; undefined ends without writing
    await written;
  };

  const walk = async (rel: string): Promise<void> => {
    for (const name of readdirSync(join(root, rel)).sort(byteOrder)) {
      const relPath = rel === "" ? name : `${rel}/${name}`;
      const path = join(root, relPath);
      const st = lstatSync(path);
      const base: Entry = { name: relPath, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: new Date(Math.floor(st.mtimeMs / 1000) * 1000) };
      if (st.isDirectory()) {
        await add({ ...base, type: "directory" });
        await walk(relPath);
      } else if (st.isSymbolicLink()) {
        await add({ ...base, type: "symlink", linkname: readlinkSync(path) });
      } else if (st.isSocket()) {
        continue;
      } else {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? firstNames.get(key) : undefined;
        if (first !== undefined) {
          await add({ ...base, type: "link", linkname: first });
          continue;
        }
        if (st.nlink > 1) firstNames.set(key, relPath);
        if (st.isFile()) await addFile({ ...base, type: "file", size: st.size }, path);
        else if (st.isFIFO()) await add({ ...base, type: "fifo" });
        else await add({ ...base, type: st.isCharacterDevice() ? "character-device" : "block-device", ...devNumbers(st.rdev) });
      }
    }
  };

  walk("")
    .then(() => stream.finalize())
    .catch((err: unknown) => stream.destroy(err instanceof Error ? err : new Error(String(err))));
  // tar-stream's types yield `unknown`; a pack yields Buffers.
  return stream as unknown as TarInput;
}
