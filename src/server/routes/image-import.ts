/**
 * POST /images/import: `skiff image import` with the archive as the body (a
 * docker save archive, an OCI layout tar, or a root filesystem tarball,
 * plain or compressed). The body streams to a file in the image cache's
 * tmp directory (the import reads it by offset, more than once), which the
 * import then takes as the CLI takes a path; the file goes when it ends.
 * The answer streams the build's events as JSON lines, as a pull's does.
 */
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { stream } from "hono/streaming";
import { SkiffError, type Skiff } from "../../index.js";
import { toErrorBody } from "../../api/errors.js";
import { errorResponses, type Reply } from "../http.js";

/** Where an upload waits for its import: `<cache>/tmp/upload-<hex>/<filename>`. */
export const uploadPrefix = "upload-";

const importQuery = z.object({
  name: z.string().min(1).optional().openapi({ description: "the image's name (default: the archive's own, else `filename` without its extensions)", example: "mybase" }),
  filename: z
    .string()
    .regex(/^[^/]+$/, "a file name without a directory")
    .optional()
    .openapi({ description: "what the archive was called (its extension is not needed: the content decides the format)", example: "rootfs.tar.gz" }),
  platform: z.string().optional().openapi({ description: "which platform of a multi-platform layout (os/arch[/variant])", example: "linux/amd64" }),
});

export function imageImportRoutes(app: OpenAPIHono, skiff: Skiff): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/images/import",
      tags: ["images"],
      summary: "import an image from the body (skiff image import): a docker save archive, an OCI layout tar, or a root filesystem tarball (plain, gzip, zstd, xz, bzip2); no body limit",
      request: { query: importQuery, body: { required: true, content: { "application/x-tar": { schema: z.string().openapi({ format: "binary" }) }, "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } } } },
      responses: {
        200: { description: 'JSON lines: {"kind":"build","event":…}, then {"kind":"done","image":…} or {"kind":"error","error":…}', content: { "application/x-ndjson": { schema: z.string() } } },
        ...errorResponses,
      },
    }),
    async (c): Promise<Reply> => {
      const { name, filename, platform } = c.req.valid("query");
      const body = c.req.raw.body;
      if (body === null) throw new SkiffError("ERR_SKIFF_USAGE", "no archive in the body", { hint: "send the archive's bytes as the body (Content-Type: application/x-tar)" });
      const dir = join(skiff.cacheDir, "tmp", `${uploadPrefix}${randomBytes(6).toString("hex")}`);
      const file = join(dir, filename ?? "upload.tar");
      await mkdir(dir, { recursive: true, mode: 0o700 });
      try {
        await pipeline(Readable.fromWeb(body as import("node:stream/web").ReadableStream<Uint8Array>), createWriteStream(file, { flags: "wx", mode: 0o600 }));
      } catch (err) {
        await rm(dir, { recursive: true, force: true });
        throw new SkiffError("ERR_SKIFF_USAGE", `the archive did not arrive whole: ${err instanceof Error ? err.message : String(err)}`, { hint: "send it again", cause: err });
      }
      c.header("content-type", "application/x-ndjson");
      return stream(c, async (out) => {
        const line = (value: unknown) => void out.write(`${JSON.stringify(value)}\n`);
        try {
          const image = await skiff.images.import(file, {
            ...(name === undefined ? {} : { name }),
            ...(platform === undefined ? {} : { platform }),
            onBuild: (event) => line({ kind: "build", event }),
          });
          line({ kind: "done", image });
        } catch (err) {
          line({ kind: "error", error: toErrorBody(err) });
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      });
    },
  );
}
