/**
 * Opening a client WebSocket to the server, its refusal (a non-101 answer)
 * read as the SkiffError the server sent. Kept apart so `ws` loads only
 * when a command streams (the CLI's bundle imports packages statically in
 * skiff modules it loads on demand).
 */
import WebSocket, { createWebSocketStream } from "ws";
import { fromErrorBody } from "./errors.js";
import { readText } from "./transport.js";

export { createWebSocketStream };

export async function openWebSocket(url: string, options: WebSocket.ClientOptions): Promise<WebSocket> {
  const ws = new WebSocket(url, options);
  await new Promise<void>((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => void readText(res).then((text) => reject(fromErrorBody(safeJson(text), res.statusCode ?? 0)), reject));
  });
  return ws;
}

export function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
