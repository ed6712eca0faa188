// The least any Node program can do for `exec VM true` over skiff's own
// protocol (src/guest/agent-handshake.ts, src/guest/native/): the greeting,
// HELLO, one EXEC with stdin closed, EXIT. No skiff module, no record read,
// no port lock, CommonJS (Node's ES module loader costs a few ms more).
// bench/run.mjs times it beside `skiff exec` and `ssh`: what `skiff exec`
// spends above it is skiff's, what it spends above `node -e 0` is Node's
// sockets and the guest's.
//
// Usage: node bench/exec-floor.cjs AGENT-SOCKET RECORD…   (e.g. a=true); exits with the command's status.
"use strict";
const { connect } = require("node:net");
const { randomBytes } = require("node:crypto");

const [socketPath, ...records] = process.argv.slice(2);
const nonce = `${randomBytes(12).toString("hex")} native1`;
const hello = `SKIFF-HELLO ${nonce}\n`;
const ready = Buffer.from(`SKIFF-READY ${nonce}\n`);

function frame(type, payload = Buffer.alloc(0)) {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 0);
  head[4] = type;
  return Buffer.concat([head, payload]);
}

const socket = connect(socketPath);
// The guest may miss the first lines of a connect (agent-handshake.ts says why): repeat as skiff does.
const repeats = [5, 15, 30].map((ms) => setTimeout(() => socket.write(hello), ms));
let seen = Buffer.alloc(0);
let greeted = false;
socket.on("connect", () => socket.write(hello));
socket.on("error", (err) => {
  console.error(`exec-floor: ${err.message}`);
  process.exitCode = 125;
});
socket.on("data", (chunk) => {
  seen = Buffer.concat([seen, chunk]);
  if (!greeted) {
    const at = seen.indexOf(ready);
    if (at < 0) return;
    greeted = true;
    repeats.forEach(clearTimeout);
    seen = seen.subarray(at + ready.length);
  }
  while (seen.length >= 5 && seen.length >= 5 + seen.readUInt32BE(0)) {
    const length = seen.readUInt32BE(0);
    const type = seen[4];
    const payload = seen.subarray(5, 5 + length);
    seen = seen.subarray(5 + length);
    if (type === 0x80 /* HELLO */) socket.write(Buffer.concat([frame(0x01 /* EXEC */, Buffer.from(records.join("\0"))), frame(0x03 /* STDIN_EOF */)]));
    else if (type === 0x84 /* EXIT */) {
      process.exitCode = payload.readUInt32BE(0);
      socket.destroy();
    }
  }
});
