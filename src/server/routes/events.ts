/**
 * The event stream: the library's events (progress of every verb, pulls,
 * image and layer builds) as server-sent events, while the client listens.
 * Events of verbs started by any client of this server reach every listener.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { streamSSE } from "hono/streaming";
import type { Skiff, SkiffEvents } from "../../index.js";
import { errorResponses } from "../http.js";

const kinds = ["progress", "pull", "build", "layer"] as const satisfies readonly (keyof SkiffEvents)[];

/** How often an idle stream says it is alive, so proxies and clients can tell a quiet server from a dead one. */
const keepAliveMs = 15_000;

export function eventRoutes(app: OpenAPIHono, skiff: Skiff): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/events",
      tags: ["events"],
      summary: "server-sent events: `progress` (one per lifecycle step, with vm, phase, message), `pull`, `build`, `layer`; ?vm=NAME keeps one VM's progress",
      request: { query: z.object({ vm: z.string().min(1).optional() }) },
      responses: { 200: { description: "an event stream", content: { "text/event-stream": { schema: z.string() } } }, ...errorResponses },
    }),
    (c) => {
      const vm = c.req.valid("query").vm;
      return streamSSE(c, async (sse) => {
        const queue: { event: string; data: string }[] = [];
        let wake: (() => void) | undefined;
        const listeners = kinds.map((kind) => {
          const listener = (e: unknown) => {
            if (vm !== undefined && kind === "progress" && (e as { vm?: string }).vm !== vm) return;
            queue.push({ event: kind, data: JSON.stringify(e) });
            wake?.();
          };
          skiff.on(kind, listener as never);
          return () => skiff.off(kind, listener as never);
        });
        const closed = new Promise<void>((resolve) => sse.onAbort(resolve));
        try {
          // A comment first: the client knows it is subscribed before it starts what it wants to watch.
          await sse.write(": subscribed\n\n");
          while (!sse.aborted && !sse.closed) {
            const next = queue.shift();
            if (next !== undefined) {
              await sse.writeSSE(next);
              continue;
            }
            let timer: NodeJS.Timeout | undefined;
            await Promise.race([
              closed,
              new Promise<void>((resolve) => {
                wake = resolve;
                timer = setTimeout(resolve, keepAliveMs);
              }),
            ]);
            clearTimeout(timer);
            wake = undefined;
            if (queue.length === 0 && !sse.aborted) await sse.write(": keep-alive\n\n");
          }
        } finally {
          for (const off of listeners) off();
        }
      });
    },
  );
}
