/**
 * `docker cp` between the host and a guest, as a tar stream over one exec
 * channel: skiff's static busybox tar in the guest (so it works whatever the
 * image contains); on the host, GNU tar makes what goes in, and what comes
 * out is unpacked by copy/extract.ts, never by tar: a guest's root can
 * replace the guest's tar, so that stream is an attacker's.
 *
 * Semantics (docker cp): the source is a file or a directory. If the
 * destination is an existing directory, the source goes inside it under its
 * own name; otherwise the destination is created with that name, and its
 * parent must exist. A directory copied onto an existing one merges into it.
 * Modes are kept; owners become the destination's (root in the guest, the
 * calling user on the host). From a guest, setuid/setgid bits are cleared
 * and device nodes and fifos skipped (and counted). `archive` (docker cp
 * -a) keeps owners, full modes and special files both ways. Guest paths are
 * relative to the image root.
 *
 * Cloud images have no skiff agent: their own sshd runs the same scripts
 * with the image's own tar under `sudo` as the default user (which cloud-init
 * gives passwordless sudo), so any path can be read or written. Where that
 * user may write the destination directory, files are unpacked as that user
 * and belong to it (as with scp); elsewhere (/etc, /root, …), and whenever
 * owners are kept, as root.
 */
import { lstat, mkdir, rename, stat } from "node:fs/promises";
import { basename, dirname, join, posix, resolve, sep } from "node:path";
import { PassThrough, type Readable, Writable } from "node:stream";
import { errnoOf, SkiffError } from "../errors.js";
import type { ExecIO, RunningExec } from "./agent-exec.js";
import { extractUntrusted, type ExtractOptions, type ExtractReport } from "./copy/extract.js";
import { finishTogether, hostTar } from "./copy/host-tar.js";
import { makeStaging, sweepStaging, type Staging } from "./copy/staging.js";
import type { ExecRequest } from "./exec-request.js";
import { crashPoint } from "../util/crash-point.js";

/** What copying needs from a connection. */
export interface CopyContext {
  readonly vmName: string;
  /** Set when the guest is a cloud image reached over its own sshd as this user; undefined for skiff's agent. */
  readonly sshUser: string | undefined;
  /** skiff home, where staging directories are journaled (copy/staging.ts). */
  readonly home: string;
  start(req: ExecRequest, io: ExecIO): Promise<RunningExec>;
}

export interface CopyOptions {
  /** docker cp -a: keep owners and full modes (setuid/setgid), and out of a VM also fifos and device nodes. */
  archive?: boolean;
}

/** What a copy out of a VM did not bring over as it was (see ExtractReport). */
export type CopyReport = ExtractReport;

const busybox = "/dev/.skiff/bin/busybox";

/**
 * What the scripts below call their tools with: `$bb` for reading, `$as`
 * (set by `writer DIR`) for writing, `$keep` for tar to keep modes.
 * Through the agent both are skiff's static busybox, running as root.
 */
const agentPrelude = `bb=$0; as=$0; keep=; writer() { :; }`;
/**
 * Over a cloud image's sshd: the image's own tools, run by root under sudo;
 * writes are done as the SSH user where it may write DIR itself, unless
 * owners are to be kept (only root can give files to others).
 */
const sudoPrelude = `bb=; as=; keep=-p
writer() { if [ "$owners" != keep ] && sudo -n -u "$SUDO_USER" test -w "$1" 2>/dev/null; then as="sudo -n -u $SUDO_USER"; else as=; fi; }`;

/**
 * Guest side of copyTo: pick the target like docker cp, then unpack stdin
 * there. A file goes through a temporary directory next to its target. A
 * copy killed half-way would leave that behind: the trap removes it when
 * the shell is told to stop (the host went away: HUP, PIPE, TERM), and as
 * SIGKILL or a power-off skip traps, every copy into a directory also
 * removes the ones there whose shell (its pid is in the name) is gone.
 */
const unpackScript = `
dest=$1; name=$2; kind=$3; owners=$4
if [ -d "$dest" ]; then
  target="\${dest%/}/$name"
else
  case $dest in */) if [ "$kind" = file ]; then echo "skiff-cp: no-dir $dest" >&2; exit 3; fi ;; esac
  target=$dest
  while [ "\${target%/}" != "$target" ]; do target=\${target%/}; done
fi
parent=$($bb dirname "$target")
[ -d "$parent" ] || { echo "skiff-cp: no-parent $parent" >&2; exit 3; }
if [ "$kind" = dir ]; then
  if [ -e "$target" ] && [ ! -d "$target" ]; then echo "skiff-cp: not-dir $target" >&2; exit 4; fi
  if [ -d "$target" ]; then writer "$target"; else writer "$parent"; $as mkdir "$target" || exit 5; fi
  exec $as tar -x $keep -f - -C "$target"
fi
if [ -d "$target" ]; then echo "skiff-cp: is-dir $target" >&2; exit 4; fi
writer "$parent"
for old in "$parent"/.skiff-cp.*.*; do
  pid=\${old##*/.skiff-cp.}; pid=\${pid%%.*}
  case $pid in ''|*[!0-9]*) continue ;; esac
  [ -d "$old" ] && ! kill -0 "$pid" 2>/dev/null && $as rm -rf "$old" 2>/dev/null
done
tmp=$($as mktemp -d "$parent/.skiff-cp.$$.XXXXXX") || exit 5
trap '$as rm -rf "$tmp"' EXIT
trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 141' PIPE; trap 'exit 143' TERM
$as tar -x $keep -f - -C "$tmp" && $as mv -f "$tmp/$name" "$target"
`;

/** Guest side of copyFrom: say what the source is on stderr, then pack it to stdout. */
const packScript = `
src=$1; dir=$2; name=$3
if [ -d "$src" ] && [ ! -L "$src" ]; then echo "skiff-cp: dir" >&2; exec $bb tar -c -f - -C "$src" .; fi
if [ -e "$src" ] || [ -L "$src" ]; then echo "skiff-cp: file" >&2; cd "$dir" && exec $bb tar -c -f - -- "$name"; fi
echo "skiff-cp: missing" >&2; exit 3
`;

/** `script` as root: by skiff's busybox sh through the agent, by the image's sh under sudo on a cloud image. */
function shellRequest(ctx: CopyContext, script: string, args: string[]): ExecRequest {
  if (ctx.sshUser === undefined) return { argv: [busybox, "sh", "-c", agentPrelude + script, busybox, ...args], cwd: "/", user: "root" };
  return { argv: ["sudo", "-n", "sh", "-c", sudoPrelude + script, "skiff-cp", ...args], cwd: "/" };
}

/** Copy `hostPath` (file or directory) to `guestPath` in the VM. */
export async function copyTo(ctx: CopyContext, hostPath: string, guestPath: string, opts: CopyOptions = {}): Promise<void> {
  const source = resolve(hostPath);
  const info = await lstat(source).catch((err: unknown) => {
    throw hostFileError(err, source, "no such file or directory on the host");
  });
  const kind = info.isDirectory() ? "dir" : "file";
  const name = basename(source);
  const stderr = new TextCollector();
  const input = new PassThrough();
  const owners = opts.archive === true ? "keep" : "root";
  const exec = await ctx.start(shellRequest(ctx, unpackScript, [guestPath, name, kind, owners]), { stdin: input, stderr });
  // The guest's tar runs as root and so sets the owners the archive names: root's, unless they are kept.
  const tarArgs = ["-c", "-f", "-", "--numeric-owner", ...(opts.archive === true ? [] : ["--owner=0", "--group=0"])];
  const tar = hostTar(kind === "dir" ? [...tarArgs, "-C", source, "."] : [...tarArgs, "-C", dirname(source), "--", name]);
  tar.child.stdout!.pipe(input);
  const outcome = await finishTogether(exec, tar);
  if (outcome.tarError !== undefined) throw outcome.tarError;
  if (outcome.code !== 0) throw guestCopyError(ctx, stderr.text, guestPath, "copy into");
}

/** Copy `guestPath` (file or directory) from the VM to `hostPath`; says what was not copied as it was. */
export async function copyFrom(ctx: CopyContext, guestPath: string, hostPath: string, opts: CopyOptions = {}): Promise<CopyReport> {
  // Staging of copies that were killed goes first (a `skiff cp` calls no other sweep).
  await sweepStaging(ctx.home);
  const dest = resolve(hostPath);
  const name = posix.basename(guestPath);
  const destInfo = await stat(dest).catch(() => undefined);
  const target = destInfo?.isDirectory() && name !== "" ? join(dest, name) : dest;
  const parent = dirname(target);
  if (!(await stat(parent).catch(() => undefined))?.isDirectory()) {
    throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `destination directory does not exist on the host: ${parent}`, {
      hint: "create it first, or copy to an existing directory",
    });
  }

  const stderr = new TextCollector();
  const stdout = new PassThrough();
  const guestDir = posix.dirname(guestPath);
  const exec = await ctx.start(shellRequest(ctx, packScript, [guestPath, guestDir, name]), { stdout, stderr });
  const kind = await Promise.race([stderr.marker, exec.done.then(() => "")]);
  if (kind !== "skiff-cp: dir" && kind !== "skiff-cp: file") {
    await exec.done;
    throw guestCopyError(ctx, stderr.text, guestPath, "copy from");
  }

  let unpackDir = target;
  let staging: Staging | undefined;
  try {
    const targetInfo = await lstat(target).catch(() => undefined);
    if (kind === "skiff-cp: dir") {
      if (targetInfo && !targetInfo.isDirectory()) throw notDirError(target, "on the host");
      if (!targetInfo) await mkdir(target);
    } else {
      if (hostPath.endsWith(sep) && !destInfo) {
        throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `destination directory does not exist on the host: ${dest}`);
      }
      if (targetInfo?.isDirectory()) throw isDirError(target, "on the host");
      // Unpack next to the target and rename: the file appears whole, with its mode, under the new name.
      staging = await makeStaging(ctx.home, parent);
      crashPoint("cp:staged");
      unpackDir = staging.path;
    }
  } catch (err) {
    // Drop what the guest still sends so its channel can close.
    stdout.resume();
    await exec.sendSignal("KILL").catch(() => {});
    await exec.done.catch(() => {});
    throw err;
  }

  try {
    const source = `${ctx.vmName}:${guestPath}`;
    const report = await unpackFromGuest(ctx, exec, { stdout, stderr }, { dest: unpackDir, source, archive: opts.archive === true }, guestPath);
    if (staging !== undefined) await moveIntoPlace(join(staging.path, name), target, source);
    return report;
  } finally {
    await staging?.discard();
  }
}

/** Guest side of `cp - NAME:/dir`: unpack stdin into an existing directory (owners root's unless kept). */
const untarScript = `
dest=$1; owners=$2
[ -d "$dest" ] || { echo "skiff-cp: no-dir $dest" >&2; exit 3; }
writer "$dest"
if [ "$owners" = keep ]; then exec $as tar -x $keep -f - -C "$dest"; fi
exec $as tar -x -o -f - -C "$dest"
`;

/** Guest side of `cp NAME:/path -`: a tar of the path under its own name (a directory with its contents), as docker cp writes. */
const tarScript = `
src=$1; dir=$2; name=$3
[ -e "$src" ] || [ -L "$src" ] || { echo "skiff-cp: missing" >&2; exit 3; }
echo "skiff-cp: ok" >&2
if [ -z "$name" ]; then exec $bb tar -c -f - -C "$src" .; fi
cd "$dir" && exec $bb tar -c -f - -- "$name"
`;

/**
 * `skiff cp NAME:/path -`: the guest's tar of `guestPath` to `out`, as it
 * comes (it goes to the user, who unpacks it where and how they choose;
 * nothing is written on the host here). `out` is not ended.
 */
export async function copyOutTar(ctx: CopyContext, guestPath: string, out: Writable): Promise<void> {
  const stderr = new TextCollector();
  const normal = posix.normalize(guestPath);
  const name = normal === "/" ? "" : posix.basename(normal);
  const exec = await ctx.start(shellRequest(ctx, tarScript, [normal, posix.dirname(normal), name]), { stdout: out, stderr });
  const { code } = await exec.done;
  if (code !== 0) throw guestCopyError(ctx, stderr.text, guestPath, "copy from");
}

/** `skiff cp - NAME:/dir`: unpack the tar read from `input` into the guest's existing directory `guestDir`. */
export async function copyInTar(ctx: CopyContext, input: Readable, guestDir: string, opts: CopyOptions = {}): Promise<void> {
  const stderr = new TextCollector();
  const exec = await ctx.start(shellRequest(ctx, untarScript, [guestDir, opts.archive === true ? "keep" : "root"]), { stdin: input, stderr });
  const { code } = await exec.done;
  if (code !== 0) throw guestCopyError(ctx, stderr.text, guestDir, "copy into");
}

/**
 * Unpack what the guest's tar writes to `io.stdout`. Whichever side fails
 * first is reported: a refused entry stops the guest's tar at once (no
 * point reading the rest), a guest tar that fails ends the unpacking.
 */
async function unpackFromGuest(
  ctx: CopyContext,
  exec: RunningExec,
  io: { stdout: PassThrough; stderr: TextCollector },
  opts: ExtractOptions,
  guestPath: string,
): Promise<ExtractReport> {
  let execEnded = false;
  let extractFailedFirst = false;
  const extraction = extractUntrusted(io.stdout, opts).then(
    (report) => ({ report, error: undefined }),
    (error: unknown) => {
      if (!execEnded) {
        extractFailedFirst = true;
        void exec.sendSignal("KILL").catch(() => {});
      }
      return { report: undefined, error };
    },
  );
  let code: number;
  try {
    code = (await exec.done).code;
  } catch (err) {
    io.stdout.destroy();
    await extraction;
    throw err;
  } finally {
    execEnded = true;
  }
  // The exec does not end the streams it writes to; once it is done, all of the archive is in `stdout`.
  if (code === 0) io.stdout.end();
  else io.stdout.destroy();
  const outcome = await extraction;
  if (outcome.report === undefined && (code === 0 || extractFailedFirst)) throw outcome.error;
  if (code !== 0 || outcome.report === undefined) throw guestCopyError(ctx, io.stderr.text, guestPath, "copy from");
  return outcome.report;
}

/** The staged file onto its target (replacing a file or symlink there, never following it). */
async function moveIntoPlace(staged: string, target: string, source: string): Promise<void> {
  try {
    await rename(staged, target);
  } catch (err) {
    if (errnoOf(err) !== "ENOENT") throw new SkiffError("ERR_SKIFF_HOST", `cannot write ${target}: ${(err as Error).message}`, { cause: err });
    throw new SkiffError("ERR_SKIFF_COPY_FAILED", `the archive from ${source} did not hold ${basename(staged)}`, { details: { source } });
  }
}

/** Collects a small stream as text and tells its first `skiff-cp:` line (sudo may warn before it). */
class TextCollector extends Writable {
  text = "";
  readonly marker: Promise<string>;
  #resolveMarker!: (line: string) => void;

  constructor() {
    super();
    this.marker = new Promise((done) => (this.#resolveMarker = done));
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    if (this.text.length < 65536) this.text += chunk.toString("utf8");
    const line = /^skiff-cp: .*(?=\n)/m.exec(this.text);
    if (line !== null) this.#resolveMarker(line[0]);
    callback();
  }
}

/** Turn the guest script's failure (its `skiff-cp:` marker, or tar's message) into an error. */
function guestCopyError(ctx: CopyContext, stderr: string, guestPath: string, verb: string): SkiffError {
  const marker = /^skiff-cp: (\S+)(?: (.*))?$/m.exec(stderr);
  const where = `in VM ${ctx.vmName}`;
  switch (marker?.[1]) {
    case "missing":
      return new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `no such file or directory ${where}: ${guestPath}`);
    case "no-parent":
      return new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `destination directory does not exist ${where}: ${marker[2]}`, {
        hint: `create it first: \`skiff exec ${ctx.vmName} mkdir -p ${marker[2]}\``,
      });
    case "no-dir":
      return new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `destination directory does not exist ${where}: ${marker[2]}`);
    case "not-dir":
      return notDirError(marker[2] ?? guestPath, where);
    case "is-dir":
      return isDirError(marker[2] ?? guestPath, where);
  }
  const message = stderr.replace(/^skiff-cp: .*\n/gm, "").trim();
  const sudo = ctx.sshUser !== undefined && /^sudo:/m.test(message);
  return new SkiffError("ERR_SKIFF_COPY_FAILED", `cannot ${verb} VM ${ctx.vmName} (${guestPath})${message ? `: ${message}` : ""}`, {
    ...(sudo ? { hint: `cp on a cloud image runs \`sudo -n\` as ${ctx.sshUser}: give that user passwordless sudo in the image` } : {}),
  });
}

function notDirError(path: string, where: string): SkiffError {
  return new SkiffError("ERR_SKIFF_BAD_PATH", `cannot copy a directory onto a file ${where}: ${path}`);
}

function isDirError(path: string, where: string): SkiffError {
  return new SkiffError("ERR_SKIFF_BAD_PATH", `cannot overwrite a directory with a file ${where}: ${path}`);
}

function hostFileError(err: unknown, path: string, what: string): SkiffError {
  if (errnoOf(err) === "ENOENT") return new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `${what}: ${path}`);
  return new SkiffError("ERR_SKIFF_HOST", `cannot read ${path}: ${(err as Error).message}`, { cause: err });
}
