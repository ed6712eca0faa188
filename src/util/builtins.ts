/**
 * Node's own modules that listing and inspecting VMs never call, loaded
 * when first called: importing node:child_process, node:crypto, node:net,
 * node:dgram and node:dns compiles their internals at start, ~20 ms
 * together, which every `skiff ps` would pay for nothing (docs/benchmarks.md,
 * "CLI start"). Loaded with require, so the callers stay synchronous.
 */
import { createRequire } from "node:module";

const load = createRequire(import.meta.url);

export const childProcess = (): typeof import("node:child_process") => load("node:child_process") as typeof import("node:child_process");
export const crypto = (): typeof import("node:crypto") => load("node:crypto") as typeof import("node:crypto");
export const net = (): typeof import("node:net") => load("node:net") as typeof import("node:net");
export const dgram = (): typeof import("node:dgram") => load("node:dgram") as typeof import("node:dgram");
export const dns = (): typeof import("node:dns/promises") => load("node:dns/promises") as typeof import("node:dns/promises");
