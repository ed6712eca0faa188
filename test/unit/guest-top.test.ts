/** `top`'s process table: the guest kernel's threads left out, failures said, never swallowed. */
import { describe, expect, it } from "vitest";
import { guestProcesses, withoutKernelThreads } from "../../src/guest/top.js";

// busybox 1.35 `ps -o pid,ppid,user,stat,vsz,rss,args` in a skiff guest.
const busybox = `PID   PPID  USER     STAT   VSZ  RSS COMMAND
    1     0 root     S     1464  988 /init
    2     0 root     SW       0    0 [kthreadd]
    9     2 root     IW<      0    0 [kworker/0:1H-kblockd]
  212     1 root     S     2336 1420 dropbear -F -s
  301   212 root     S     1464  900 sleep 3600 [not a thread]
`;

describe("withoutKernelThreads", () => {
  it("keeps the header and user processes, drops bracketed zero-memory kernel threads", () => {
    const out = withoutKernelThreads(busybox).split("\n");
    expect(out[0]).toMatch(/^PID/);
    expect(out.some((l) => l.includes("kthreadd") || l.includes("kworker"))).toBe(false);
    expect(out.filter((l) => /dropbear|\/init|sleep 3600/.test(l))).toHaveLength(3);
  });
});

describe("guestProcesses", () => {
  it("fails with the guest's words when ps fails, instead of printing nothing", async () => {
    const conn = { sshUser: undefined, run: async () => ({ code: 1, stdout: "", stderr: "ps: bad -o argument 'time'\n" }) };
    await expect(guestProcesses(conn as never, "web")).rejects.toMatchObject({
      code: "ERR_SKIFF_GUEST_COMMAND",
      place: "web",
      message: expect.stringContaining("bad -o argument"),
    });
  });

  it("asks a cloud image's own ps (procps: -e for every process)", async () => {
    let argv: string[] = [];
    const conn = { sshUser: "debian", run: async (a: string[]) => ((argv = a), { code: 0, stdout: "PID\n", stderr: "" }) };
    expect(await guestProcesses(conn as never, "c1")).toBe("PID\n");
    expect(argv).toEqual(["ps", "-eo", "pid,ppid,user,stat,vsz,rss,args"]);
  });
});
