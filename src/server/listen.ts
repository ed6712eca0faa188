/**
 * Where `skiff serve` listens: `unix:PATH`, `HOST:PORT`, `[IPV6]:PORT`, or a
 * port alone (`8080`, `:8080`), which means loopback: a server reachable
 * from elsewhere is asked for by naming the address (`0.0.0.0:8080`).
 * Default: a unix socket in skiff's home, mode 0600, where no token is
 * needed (only skiff's user can open it).
 */
import { isIP } from "node:net";
import { join, resolve } from "node:path";
import { SkiffError } from "../pure.js";

export type ListenAddress = { kind: "unix"; path: string } | { kind: "tcp"; host: string; port: number };

export const defaultSocketName = "skiff.sock";

/** A unix socket path longer than this does not fit in sockaddr_un. */
const maxSocketPath = 107;

function badListen(text: string, why: string): SkiffError {
  return new SkiffError("ERR_SKIFF_USAGE", `cannot listen on ${JSON.stringify(text)}: ${why}`, {
    place: "listen",
    hint: "use unix:PATH, HOST:PORT, [::1]:PORT or a port alone (loopback)",
  });
}

function parsePort(text: string, port: string): number {
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) throw badListen(text, `${port === "" ? "no port" : `not a port: ${port}`}`);
  return Number(port);
}

export function parseListen(text: string | undefined, home: string): ListenAddress {
  if (text === undefined || text === "") return unixAt(join(home, defaultSocketName), join(home, defaultSocketName));
  if (text.startsWith("unix:")) {
    const path = text.slice("unix:".length);
    if (path === "") throw badListen(text, "no path after unix:");
    return unixAt(resolve(path), text);
  }
  if (/^:?\d+$/.test(text)) return { kind: "tcp", host: "127.0.0.1", port: parsePort(text, text.replace(/^:/, "")) };
  const v6 = /^\[([^\]]+)\]:(\d*)$/.exec(text);
  if (v6 !== null) {
    if (isIP(v6[1]!) !== 6) throw badListen(text, `not an IPv6 address: ${v6[1]}`);
    return { kind: "tcp", host: v6[1]!, port: parsePort(text, v6[2]!) };
  }
  const i = text.lastIndexOf(":");
  if (i <= 0) throw badListen(text, "no port");
  const host = text.slice(0, i);
  if (host.includes(":")) throw badListen(text, "an IPv6 address goes in brackets");
  if (!/^[A-Za-z0-9.-]+$/.test(host)) throw badListen(text, `not a host: ${host}`);
  return { kind: "tcp", host, port: parsePort(text, text.slice(i + 1)) };
}

function unixAt(path: string, text: string): ListenAddress {
  if (Buffer.byteLength(path) > maxSocketPath) throw badListen(text, `the socket path is longer than ${maxSocketPath} bytes`);
  return { kind: "unix", path };
}

/** How a client names the address: unix:PATH or http(s)://HOST:PORT. */
export function listenUrl(addr: ListenAddress, tls: boolean): string {
  if (addr.kind === "unix") return `unix:${addr.path}`;
  const host = isIP(addr.host) === 6 ? `[${addr.host}]` : addr.host;
  return `${tls ? "https" : "http"}://${host}:${addr.port}`;
}
