/**
 * The exec WebSocket (`GET /vms/{name}/exec`), shared by server and client.
 *
 * Bytes travel as binary frames whose first byte names the stream (0 stdin,
 * 1 stdout, 2 stderr), so output is never base64'd and stdout and stderr
 * stay apart; everything else is a JSON text frame. The client's first frame
 * is `start` (the command); after it `resize`, `signal` and `eof` (stdin
 * ended). The server answers `started` once the command runs, and ends with
 * `exit` (code, signal) or `error` (a skiff error body), then closes.
 */
import { z } from "@hono/zod-openapi";
import { errorBodySchema, execStartSchema } from "./schemas.js";

export const streamId = { stdin: 0, stdout: 1, stderr: 2 } as const;
export type StreamName = keyof typeof streamId;

export type ExecStart = z.infer<typeof execStartSchema>;

export const execControlSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("resize"), cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }).strict(),
  z.object({ type: z.literal("signal"), signal: z.union([z.string().min(1), z.number().int()]) }).strict(),
  z.object({ type: z.literal("eof") }).strict(),
]);
export type ExecControl = z.infer<typeof execControlSchema>;

export const execReplySchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("started") }),
  z.object({ type: z.literal("exit"), code: z.number().int(), signal: z.string().optional() }),
  z.object({ type: z.literal("error"), error: errorBodySchema }),
]);
export type ExecReply = z.infer<typeof execReplySchema>;

/** A binary frame: the stream's id, then its bytes. */
export function encodeChunk(stream: StreamName, data: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(data.length + 1);
  frame[0] = streamId[stream];
  frame.set(data, 1);
  return frame;
}

/** Which stream a binary frame belongs to, and its bytes; undefined for an unknown id. */
export function decodeChunk(frame: Buffer): { stream: StreamName; data: Buffer } | undefined {
  const id = frame[0];
  const stream = (Object.keys(streamId) as StreamName[]).find((k) => streamId[k] === id);
  return stream === undefined ? undefined : { stream, data: frame.subarray(1) };
}
