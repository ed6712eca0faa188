/**
 * How big an image's ext4 is. The file is sparse, so a generous size costs
 * the host nothing until the guest writes; the guest's own writes land in
 * the same filesystem (through its qcow2 overlay), so the size is also the
 * room a VM has. Rule: max(1 GiB, 2 × content + 256 MiB), rounded up to a
 * multiple of 256 MiB — a small image gets the built-in base's 1 GiB, a big
 * one room for as much again plus a margin for journal and metadata.
 * Inodes: mke2fs's default ratio (one per 16 KiB), but at least twice the
 * image's own count plus 16384, for images of many small files.
 */
import { lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";

export interface TreeSize {
  /** Bytes the tree takes in 4 KiB blocks (each hard-linked file once). */
  bytes: number;
  /** Inodes it needs. */
  inodes: number;
}

const block = 4096;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

const roundUp = (n: number, to: number) => Math.ceil(n / to) * to;

/** Walk `root` without following symlinks. */
export function measureTree(root: string): TreeSize {
  let bytes = 0;
  let inodes = 0;
  const seen = new Set<number>();
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const st = lstatSync(path);
      if (st.nlink > 1 && !st.isDirectory()) {
        if (seen.has(st.ino)) continue;
        seen.add(st.ino);
      }
      inodes++;
      if (st.isDirectory()) {
        stack.push(path);
        bytes += roundUp(Math.max(st.size, block), block);
      } else if (st.isFile()) {
        bytes += roundUp(st.size, block);
      } else if (st.isSymbolicLink() && st.size >= 60) {
        bytes += block; // shorter targets live in the inode
      }
    }
  }
  return { bytes, inodes };
}

export interface Ext4Size {
  sizeBytes: number;
  inodes: number;
}

export function ext4SizeFor(tree: TreeSize): Ext4Size {
  const sizeBytes = roundUp(Math.max(GiB, 2 * tree.bytes + 256 * MiB), 256 * MiB);
  const inodes = Math.max(sizeBytes / 16384, 2 * tree.inodes + 16384);
  return { sizeBytes, inodes };
}
