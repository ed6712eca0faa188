/**
 * The bearer token a TCP listener requires: SKIFF_TOKEN when set, otherwise
 * one made at the first start in a 0600 file under skiff's home and reused
 * after. Compared in constant time (over hashes, so the length of a guess
 * tells nothing either).
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { errnoOf, SkiffError } from "../pure.js";

export const tokenFileName = "serve-token";

export interface ServerToken {
  token: string;
  /** Where it came from: the environment, or the file (made now or earlier). */
  source: "env" | "file";
  path?: string;
  created: boolean;
}

export async function serverToken(home: string, env: NodeJS.ProcessEnv = process.env): Promise<ServerToken> {
  const fromEnv = env.SKIFF_TOKEN;
  if (fromEnv !== undefined && fromEnv !== "") return { token: fromEnv, source: "env", created: false };
  const path = join(home, tokenFileName);
  await mkdir(home, { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString("base64url");
  try {
    await writeFile(path, `${token}\n`, { mode: 0o600, flag: "wx" });
    return { token, source: "file", path, created: true };
  } catch (err) {
    if (errnoOf(err) !== "EEXIST") throw err;
  }
  const st = await stat(path);
  if ((st.mode & 0o077) !== 0 || (process.getuid !== undefined && st.uid !== process.getuid())) {
    throw new SkiffError("ERR_SKIFF_UNSAFE_HOME", `the server's token file ${path} is readable by others or not yours (mode ${(st.mode & 0o777).toString(8)})`, {
      place: path,
      hint: `remove it (a new one is made at the next start) or \`chmod 600 ${path}\``,
    });
  }
  const existing = (await readFile(path, "utf8")).trim();
  if (existing === "") throw new SkiffError("ERR_SKIFF_STATE_CORRUPT", `the server's token file ${path} is empty`, { place: path, hint: "remove it; a new one is made at the next start" });
  return { token: existing, source: "file", path, created: false };
}

const digest = (s: string) => createHash("sha256").update(s).digest();

/** Whether an Authorization header carries `token`; undefined when it does, the error to answer otherwise. */
export function checkBearer(header: string | undefined, token: string): SkiffError | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  if (m !== null && timingSafeEqual(digest(m[1]!), digest(token))) return undefined;
  return new SkiffError("ERR_SKIFF_UNAUTHORIZED", header === undefined ? "this server needs a bearer token" : "wrong bearer token", {
    hint: "send Authorization: Bearer TOKEN (`skiff serve --print-token` on the server's host shows it, or SKIFF_TOKEN)",
  });
}
