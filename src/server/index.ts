/** `skiff serve` as a module: what the CLI command (and tests) start. */
export { startServer, type RunningServer, type ServeOptions } from "./serve.js";
export { createApp, type AppOptions, type Mount } from "./app.js";
export { parseListen, listenUrl, type ListenAddress } from "./listen.js";
export { serverToken, checkBearer, tokenFileName, type ServerToken } from "./token.js";
export { mcpMount } from "./mcp.js";
