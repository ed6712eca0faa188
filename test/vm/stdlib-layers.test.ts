/**
 * The standard library layers, each proven by its service answering over a
 * network from another VM. Three images are built on the `debian` base
 * (packages from the tests' loopback Debian repository, .cache/apt-repo):
 *
 *   srv1: ssh, memcached, postgres, http-proxy, vsftpd, socks-proxy
 *   srv2: prometheus, mariadb, samba
 *   cli:  clients, ssh-hardened
 *
 * (Two server images, not one: built at once, they take half as long.)
 * The three VMs then run on one
 * private network inside a namespace this test makes; `cli` checks every
 * service on srv1 and srv2 with real clients, and srv1 logs in to cli's
 * hardened sshd. Builds run outside the namespace (the repository is on the
 * host's loopback); images land in the shared cache, so a second run skips
 * them (`debian` is the same image each run: a reproducible bootstrap), and
 * set-up starts them ahead of this file (scripts/test-std-images.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureDebian, serveAptRepo } from "./apt-repo.js";
import { Harness } from "./harness.js";
import { stdlibImages as images } from "./stdlib-images.js";

// Measured used memory after boot (free -m), when mariadb was on srv1 and samba on srv2: srv1 ~250 MiB
// (mariadbd 73 MiB RSS), srv2 ~125 MiB (samba ~30 MiB), cli ~90 MiB.
const memory = { srv1: "448m", srv2: "448m", cli: "256m" } as const;
type Vm = keyof typeof images;

const build = new Harness();
const h = Harness.inNewNetns("skt-std");
let repo: Awaited<ReturnType<typeof serveAptRepo>> | undefined;
const timings: Record<string, string> = {};

/** Run `script` by sh in VM `vm`; stdout on exit 0, else throws with both streams. */
function sh(vm: Vm, script: string, timeoutMs = 120_000): Promise<string> {
  return h.ok(["exec", vm, "sh", "-c", script], { timeoutMs });
}

/** `script` again each second until it succeeds (services come up after boot), at most `seconds`. */
function until(vm: Vm, script: string, seconds = 90): Promise<string> {
  const err = "/tmp/.until-stderr";
  return sh(vm, `i=0; while :; do out=$( { ${script} ; } 2>${err} ) && { printf '%s' "$out"; exit 0; }; i=$((i+1)); [ $i -ge ${seconds} ] && { printf '%s' "$out"; cat ${err}; exit 1; } >&2; sleep 1; done`, (seconds + 60) * 1000);
}

function secondsSince(t0: number): string {
  return `${((performance.now() - t0) / 1000).toFixed(1)} s`;
}

beforeAll(async () => {
  repo = await serveAptRepo();
  const mirror = repo.mirror;
  await ensureDebian(build, mirror);
  // Builds at once: a build VM has one vCPU, so under TCG one build keeps one core busy and two
  // cores take the three in about half the time one after the other took (15 min cold in CI).
  const built: Partial<Record<Vm, string>> = {};
  const t0 = performance.now();
  await Promise.all(
    (Object.keys(images) as Vm[]).map(async (vm) => {
      built[vm] = (await build.ok(["layer", "build", ...images[vm], "--apt-mirror", mirror], { timeoutMs: 1_800_000 })).trim();
      timings[`build ${vm} (${images[vm].join(", ")})`] = secondsSince(t0);
    }),
  );

  await h.ok(["network", "create", "lan"]);
  // One after the other: VMs started at once can miss each other in /etc/hosts.
  for (const vm of Object.keys(images) as Vm[]) {
    const t0 = performance.now();
    await h.ok(["run", "-d", "--name", vm, "--network", "lan", "--memory", memory[vm], built[vm]!], { timeoutMs: 300_000 });
    timings[`run -d ${vm}`] = secondsSince(t0);
  }
}, 3_600_000);

afterAll(async () => {
  console.log(Object.entries(timings).map(([k, v]) => `${k}: ${v}`).join("\n"));
  if (process.env.SKIFF_KEEP_LOGS) console.log(h.consoleLogs());
  await h.cleanup();
  await build.cleanup();
  await repo?.close();
});

describe("standard library layers, answering from another VM", () => {
  it("ssh: root logs in with a key; host keys were made at first start", async () => {
    const pub = await sh("cli", "rm -f /root/.ssh/id_ed25519*; ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519 && cat /root/.ssh/id_ed25519.pub");
    await sh("srv1", `echo '${pub.trim()}' >> /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys`);
    const t0 = performance.now();
    const out = await until("cli", "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o ConnectTimeout=5 root@srv1 'echo ssh-ok $(id -un)@$(hostname)'");
    timings["ssh answered after"] = secondsSince(t0);
    expect(out).toContain("ssh-ok root@srv1");
    // Keys made in this VM, not baked into the image by the package.
    expect(await sh("srv1", "ls /etc/ssh/ | grep -c '^ssh_host_.*_key$'")).toBe("3\n");
    const refused = await h.run(["exec", "cli", "ssh", "-o", "BatchMode=yes", "-o", "PreferredAuthentications=password", "root@srv1", "true"]);
    expect(refused.code).not.toBe(0);
  });

  it("ssh-hardened: skiff logs in with a key; root, passwords and old algorithms are refused", async () => {
    const pub = await sh("srv1", "rm -f /root/.ssh/id_ed25519*; ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519 && cat /root/.ssh/id_ed25519.pub");
    await sh("cli", `echo '${pub.trim()}' >> /home/skiff/.ssh/authorized_keys`);
    // Root may have the key and is still refused.
    await sh("cli", `mkdir -p -m 700 /root/.ssh && echo '${pub.trim()}' >> /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys`);
    const ssh = "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o ConnectTimeout=5";
    expect(await until("srv1", `${ssh} skiff@cli 'id -un'`)).toBe("skiff");
    const attempt = async (args: string) => h.run(["exec", "srv1", "sh", "-c", `${ssh} ${args} true`]);
    const root = await attempt("root@cli");
    expect(root.code).toBe(255);
    expect(root.stderr).toContain("Permission denied (publickey)");
    const password = await attempt("-o PreferredAuthentications=password,keyboard-interactive skiff@cli");
    expect(password.code).toBe(255);
    const cbc = await attempt("-o Ciphers=aes128-cbc skiff@cli");
    expect(cbc.stderr).toContain("no matching cipher found");
    const oldKex = await attempt("-o KexAlgorithms=diffie-hellman-group14-sha256 skiff@cli");
    expect(oldKex.stderr).toContain("no matching key exchange method found");
    const effective = await sh("cli", "/usr/sbin/sshd -T | grep -E '^(permitrootlogin|passwordauthentication|maxauthtries|x11forwarding|allowtcpforwarding) '");
    expect(effective.trim().split("\n").sort()).toEqual(["allowtcpforwarding no", "maxauthtries 3", "passwordauthentication no", "permitrootlogin no", "x11forwarding no"]);
  });

  it("memcached: set, get and stats over TCP", async () => {
    const out = await until("cli", `printf 'set greeting 0 0 5\\r\\nhello\\r\\nget greeting\\r\\nquit\\r\\n' | nc -q 3 srv1 11211`);
    expect(out).toContain("STORED");
    expect(out).toContain("VALUE greeting 0 5\r\nhello\r\nEND");
    const stats = await sh("cli", `printf 'stats\\r\\nquit\\r\\n' | nc -q 3 srv1 11211`);
    expect(stats).toMatch(/STAT curr_items 1\r/);
    expect(stats).toMatch(/STAT limit_maxbytes 67108864\r/);
  });

  it("postgres: the skiff role logs in with its password, queries and writes", async () => {
    const psql = "PGPASSWORD=skiff PGCONNECT_TIMEOUT=5 psql -h srv1 -U skiff -d skiff -v ON_ERROR_STOP=1 -tA";
    expect(await until("cli", `${psql} -c 'SELECT 1'`)).toBe("1");
    expect(await sh("cli", `${psql} -c 'CREATE TABLE t (v text)' -c "INSERT INTO t VALUES ('written')" -c 'SELECT v FROM t'`)).toContain("written");
    const wrong = await h.run(["exec", "cli", "sh", "-c", "PGPASSWORD=nope psql -h srv1 -U skiff -d skiff -c 'SELECT 1'"]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain("password authentication failed");
  });

  it("mariadb: the skiff user logs in from the network, queries and writes", async () => {
    const mariadb = "mariadb -h srv2 -u skiff -pskiff --connect-timeout=5 -N skiff";
    expect(await until("cli", `${mariadb} -e 'SELECT 1'`)).toBe("1");
    expect(await sh("cli", `${mariadb} -e "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('written'); SELECT v FROM t"`)).toBe("written\n");
    const root = await h.run(["exec", "cli", "mariadb", "-h", "srv2", "-u", "root", "-e", "SELECT 1"]);
    expect(root.code).not.toBe(0);
  });

  it("prometheus: ready, and its scrape of itself is up", async () => {
    expect(await until("cli", "curl -fsS --max-time 5 http://srv2:9090/-/ready", 120)).toContain("Prometheus Server is Ready.");
    const up = await until("cli", `curl -fsS --max-time 5 'http://srv2:9090/api/v1/query?query=up' | grep -q '"value":\\[[0-9.]*,"1"\\]' && curl -fsS 'http://srv2:9090/api/v1/query?query=up'`, 60);
    expect(JSON.parse(up)).toMatchObject({ status: "success", data: { result: [{ metric: { job: "prometheus", instance: "localhost:9090" }, value: [expect.any(Number), "1"] }] } });
  });

  it("samba: a guest lists the share, puts a file and gets it back", async () => {
    expect(await until("cli", "smbclient -N -L //srv2 -g 2>/dev/null | grep '^Disk|share|'")).toContain("Disk|share|");
    const back = await sh("cli", "cd /tmp && echo smb-roundtrip > up.txt && smbclient -N //srv2/share -c 'put up.txt; get up.txt down.txt' && cat down.txt");
    expect(back).toContain("smb-roundtrip");
    expect(await sh("srv2", "stat -c '%U %s' /srv/share/up.txt")).toBe("nobody 14\n");
  });

  describe("proxies, to a web server on cli", () => {
    beforeAll(async () => {
      await sh("cli", "mkdir -p /srv/www && echo hello-from-cli > /srv/www/index.html && busybox httpd -p 8080 -h /srv/www");
    });

    it("http-proxy: tinyproxy on srv1 fetches the page", async () => {
      const out = await until("cli", "curl -fsS --max-time 10 -x http://srv1:8888 http://cli:8080/index.html");
      expect(out).toBe("hello-from-cli");
      // The answer came through tinyproxy (ViaProxyName skiff).
      expect(await sh("cli", "curl -fsS -D - -o /dev/null -x http://srv1:8888 http://cli:8080/index.html")).toMatch(/^Via: 1\.1 skiff/im);
    });

    it("socks-proxy: dante on srv1 connects through to the page (SOCKS5, names resolved by the proxy)", async () => {
      expect(await until("cli", "curl -fsS --max-time 10 --socks5-hostname srv1:1080 http://cli:8080/index.html")).toBe("hello-from-cli");
      // SOCKS4 and SOCKS5 with the address resolved by the client.
      expect(await sh("cli", "curl -fsS --max-time 10 --socks4 srv1:1080 http://cli:8080/index.html")).toBe("hello-from-cli\n");
      expect(await sh("cli", "curl -fsS --max-time 10 --socks5 srv1:1080 http://cli:8080/index.html")).toBe("hello-from-cli\n");
    });
  });

  it("vsftpd: anonymous list and download over passive mode; uploads refused", async () => {
    expect(await until("cli", "curl -fsS --max-time 10 ftp://srv1/")).toMatch(/README\.txt/);
    const verbose = await sh("cli", "curl -fsS -v --max-time 10 ftp://srv1/README.txt 2>&1");
    expect(verbose).toContain("Served by skiff's vsftpd layer");
    expect(verbose).toMatch(/Connecting to \S+ \(\S+\) port 3000\d\b/);
    const upload = await h.run(["exec", "cli", "sh", "-c", "echo x > /tmp/x && curl -fsS --max-time 10 -T /tmp/x ftp://srv1/x"]);
    expect(upload.code).not.toBe(0);
  });
});
