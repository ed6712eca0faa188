/**
 * The MCP server at /mcp over Streamable HTTP, stateful as the SDK's own
 * examples are: an initialize request without a session id makes a new
 * McpServer and transport, and every later request names its session in
 * the Mcp-Session-Id header. The SDK's web-standard transport is used (not
 * its node one) because mounts speak fetch's Request and Response, which
 * is what hono hands over. The token check in front of it is the app's.
 */
import { randomUUID } from "node:crypto";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import type { Mount } from "./app.js";

interface Session {
  server: McpServer;
  transport: WebStandardStreamableHTTPServerTransport;
}

/** A JSON-RPC error with no id, as the SDK's transport answers requests it cannot take. */
function rpcError(status: number, code: number, message: string): Response {
  return new Response(JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: null }), { status, headers: { "content-type": "application/json" } });
}

/** `newServer` makes one MCP server per session (createMcpServer with the serve's policy). */
export function mcpMount(newServer: () => McpServer, path = "/mcp"): Mount {
  const sessions = new Map<string, Session>();
  return {
    path,
    async fetch(req) {
      const id = req.headers.get("mcp-session-id");
      if (id !== null) {
        const session = sessions.get(id);
        // 404 tells a client its session is gone (the server restarted): it starts a new one.
        return session === undefined ? rpcError(404, -32001, "session not found") : session.transport.handleRequest(req);
      }
      const server = newServer();
      const transport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (sid) => void sessions.set(sid, { server, transport }),
        onsessionclosed: (sid) => void sessions.delete(sid),
      });
      transport.onclose = () => {
        if (transport.sessionId !== undefined) sessions.delete(transport.sessionId);
      };
      await server.connect(transport);
      const res = await transport.handleRequest(req);
      // Anything but an initialize (refused by the transport) made no session: nothing to keep.
      if (transport.sessionId === undefined) await server.close();
      return res;
    },
    async close() {
      const open = [...sessions.values()];
      sessions.clear();
      await Promise.all(open.map((s) => s.server.close().catch(() => undefined)));
    },
  };
}
