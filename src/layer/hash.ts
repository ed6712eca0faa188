/**
 * The cache key of a layer build: a hash of every input — the base image's
 * digest, each layer's name and every file of its directory (path, whether
 * it is executable, bytes; symlinks by target), their order, and the
 * builder's version. Equal inputs name the same image; any change names a
 * new one. Hidden VCS directories (.git) do not count.
 */
import { createHash } from "node:crypto";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";

/** Bump when the build recipe (build.ts, package-manager.ts) changes what an image holds. */
export const layerBuilderVersion = 2;

/** Every file under `dir`, as sorted "kind path mode-bit sha256" lines. */
export async function layerDirDigest(dir: string): Promise<string> {
  const lines: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(dir, rel))).sort();
    for (const name of names) {
      if (name === ".git") continue;
      const path = rel === "" ? name : `${rel}/${name}`;
      const st = await lstat(join(dir, path));
      if (st.isDirectory()) {
        lines.push(`d ${JSON.stringify(path)}`);
        await walk(path);
      } else if (st.isSymbolicLink()) {
        lines.push(`l ${JSON.stringify(path)} ${JSON.stringify(await readlink(join(dir, path)))}`);
      } else if (st.isFile()) {
        const sum = createHash("sha256").update(await readFile(join(dir, path))).digest("hex");
        lines.push(`f ${JSON.stringify(path)} ${st.mode & 0o111 ? "x" : "-"} ${sum}`);
      }
    }
  };
  await walk("");
  return createHash("sha256").update(lines.join("\n")).digest("hex");
}

/** "sha256:<hex>" naming the image that `layers` (in order) make on `baseDigest`. */
export async function layersDigest(baseDigest: string, layers: readonly { name: string; dir: string }[]): Promise<string> {
  const parts = [`skiff-layers v${layerBuilderVersion}`, `base ${baseDigest}`];
  for (const layer of layers) parts.push(`layer ${JSON.stringify(layer.name)} ${await layerDirDigest(layer.dir)}`);
  return `sha256:${createHash("sha256").update(parts.join("\n")).digest("hex")}`;
}

/** The local name of a layers image: "skiff-layers:<12 hex>". */
export function layersImageName(digest: string): string {
  return `skiff-layers:${digest.replace(/^sha256:/, "").slice(0, 12)}`;
}
