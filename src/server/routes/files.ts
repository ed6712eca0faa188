/**
 * Files in and out of a running VM (one file over SFTP, or a tar as `skiff
 * cp -` makes and takes), and its console log. Bodies stream: nothing is
 * held whole in the server's memory.
 */
import { Readable, PassThrough } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { SFTPWrapper, Stats } from "ssh2";
import { SkiffError, type AgentConnection, type Skiff } from "../../index.js";
import { okSchema } from "../../api/schemas.js";
import { errorResponses, flag, json, jsonResponse, nameParam, type Reply } from "../http.js";

const guestPath = z.string().regex(/^\//, "an absolute path in the guest").openapi({ example: "/etc/hostname" });
const format = z.enum(["file", "tar"]).default("file");

/** What sftp's numeric status codes mean to a caller. */
function sftpError(err: unknown, path: string): SkiffError {
  const code = (err as { code?: unknown }).code;
  if (code === 2) return new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `no such file in the guest: ${path}`, { place: "path" });
  const why = err instanceof Error ? err.message : String(err);
  return new SkiffError("ERR_SKIFF_COPY_FAILED", `${path} in the guest: ${why}`, { place: "path", cause: err });
}

function sftpStat(sftp: SFTPWrapper, path: string): Promise<Stats> {
  return new Promise((resolve, reject) => sftp.stat(path, (err, st) => (err ? reject(sftpError(err, path)) : resolve(st))));
}

/** A connection and an SFTP session on it, both ended by `close`. */
async function openSftp(skiff: Skiff, name: string): Promise<{ conn: AgentConnection; sftp: SFTPWrapper; close: () => void }> {
  const conn = await skiff.connect(name);
  try {
    const sftp = await conn.sftp();
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      sftp.end();
      void conn.close();
    };
    return { conn, sftp, close };
  } catch (err) {
    await conn.close();
    throw err;
  }
}

/** A web body as a Node stream (an absent body is empty). */
function bodyStream(req: Request): Readable {
  return req.body === null ? Readable.from([]) : Readable.fromWeb(req.body as import("node:stream/web").ReadableStream<Uint8Array>);
}

function streamResponse(stream: Readable, headers: Record<string, string>): Reply {
  return new Response(Readable.toWeb(stream) as ReadableStream, { status: 200, headers });
}

export function fileRoutes(app: OpenAPIHono, skiff: Skiff): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/vms/{name}/files",
      tags: ["files"],
      summary: "read a file (format=file) or a tar of a file or directory (format=tar) from a running VM",
      request: { params: nameParam, query: z.object({ path: guestPath, format }) },
      responses: {
        200: { description: "the file's bytes, or a tar named by the path's base name", content: { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } } },
        ...errorResponses,
      },
    }),
    async (c) => {
      const { path, format: fmt } = c.req.valid("query");
      const { conn, sftp, close } = await openSftp(skiff, c.req.valid("param").name);
      try {
        const st = await sftpStat(sftp, path);
        if (fmt === "tar") {
          sftp.end();
          const out = new PassThrough();
          conn.copyOutTar(path, out).then(
            () => out.end(),
            (err: unknown) => out.destroy(err instanceof Error ? err : new Error(String(err))),
          );
          out.on("close", close);
          return streamResponse(out, { "content-type": "application/x-tar" });
        }
        if (st.isDirectory()) {
          throw new SkiffError("ERR_SKIFF_BAD_PATH", `${path} is a directory in the guest`, { place: "path", hint: "ask for format=tar to get a directory" });
        }
        const stream = sftp.createReadStream(path);
        stream.on("close", close);
        stream.on("error", close);
        return streamResponse(stream, { "content-type": "application/octet-stream", "content-length": String(st.size) });
      } catch (err) {
        close();
        throw err;
      }
    },
  );

  app.openapi(
    createRoute({
      method: "put",
      path: "/vms/{name}/files",
      tags: ["files"],
      summary: "write a file (format=file; its parent must exist) or unpack a tar into an existing directory (format=tar)",
      request: {
        params: nameParam,
        query: z.object({ path: guestPath, format, mode: z.string().regex(/^[0-7]{3,4}$/, "an octal mode such as 0644").optional() }),
        body: { content: { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } } },
      },
      responses: { 200: jsonResponse(okSchema, "written"), ...errorResponses },
    }),
    async (c) => {
      const { path, format: fmt, mode } = c.req.valid("query");
      const body = bodyStream(c.req.raw);
      const { conn, sftp, close } = await openSftp(skiff, c.req.valid("param").name);
      try {
        if (fmt === "tar") {
          const st = await sftpStat(sftp, path);
          if (!st.isDirectory()) throw new SkiffError("ERR_SKIFF_BAD_PATH", `${path} is not a directory in the guest`, { place: "path" });
          await conn.copyInTar(body, path);
        } else {
          const out = sftp.createWriteStream(path, mode === undefined ? {} : { mode: parseInt(mode, 8) });
          await pipeline(body, out).catch((err: unknown) => {
            throw sftpError(err, path);
          });
        }
        return json({ ok: true });
      } finally {
        close();
      }
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/vms/{name}/logs",
      tags: ["vms"],
      summary: "the VM's serial console log (provision=true: its provisioners' log); with follow=true it streams until the VM stops or the client leaves",
      request: { params: nameParam, query: z.object({ follow: flag, lines: z.coerce.number().int().min(0).optional(), provision: flag }) },
      responses: { 200: { description: "the log", content: { "text/plain": { schema: z.string() } } }, ...errorResponses },
    }),
    async (c) => {
      const name = c.req.valid("param").name;
      const { follow, lines, provision } = c.req.valid("query");
      const stream = await skiff.logs(name, { follow, provision, ...(lines === undefined ? {} : { lines }), signal: c.req.raw.signal });
      return streamResponse(stream, { "content-type": "text/plain; charset=utf-8" });
    },
  );
}
