#!/usr/bin/env bash
# The one set-up command: host packages, npm dependencies, the build, and
# `skiff` on PATH. Each step runs only when it has something to do, so a
# second run is fast, and with --quiet it prints nothing unless it works.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: ./setup.sh [--quiet] [--test]

Installs what skiff needs (Debian packages, npm dependencies), builds it and
puts `skiff` on PATH. Safe to run again: steps that are done are skipped.

  -q, --quiet   print nothing unless a step has work to do
  --test        also prepare what the tests need: a Debian repository of the
                standard layers' packages in .cache/apt-repo, served on loopback
  -h, --help    show this help
EOF
}

quiet=0
tests=0
for arg in "$@"; do
  case "$arg" in
    -q | --quiet) quiet=1 ;;
    --test) tests=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "setup: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$repo"

# Said only without --quiet.
note() { if [ "$quiet" = 0 ]; then echo "setup: $*"; fi; }
# Said always: a step is doing work.
doing() { echo "setup: $*"; }
die() { echo "setup: $*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# --- (a) Debian packages -------------------------------------------------
packages=(
  qemu-system-x86 qemu-utils linux-image-amd64 busybox-static dropbear-bin
  openssh-sftp-server openssh-client e2fsprogs xz-utils zstd gcc libc6-dev
  socat tar cpio docker-registry skopeo umoci apache2-utils musl-tools mmdebstrap
  genisoimage syslinux syslinux-common mtools dosfstools fdisk
  iproute2 nftables tcpdump dpkg-dev systemd
  linux-source bc bison flex libelf-dev make
)

install_packages() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "setup: not a Debian host (no dpkg-query); install the equivalents of: ${packages[*]}" >&2
    return
  fi
  local installed missing=()
  # dpkg-query fails when it does not know a package at all; that is "missing" too.
  installed="$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true)"
  for pkg in "${packages[@]}"; do
    if ! grep -qx "$pkg installed" <<<"$installed"; then missing+=("$pkg"); fi
  done
  if [ "${#missing[@]}" = 0 ]; then
    note "Debian packages: all ${#packages[@]} installed"
    return
  fi
  if ! is_root; then
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: install them as root, then run ./setup.sh again:" >&2
    echo "  sudo apt-get update && sudo apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  doing "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# --- (b) npm dependencies ------------------------------------------------
check_node() {
  command -v node >/dev/null 2>&1 || die "node not found; skiff needs Node.js 20 or newer (and npm)"
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  [ "$major" -ge 20 ] || die "node $(node --version) is too old; skiff needs Node.js 20 or newer"
}

install_npm() {
  if [ ! -f package-lock.json ]; then
    if [ -d node_modules ]; then
      note "npm dependencies: present (no lockfile)"
      return
    fi
    doing "installing npm dependencies (npm install)"
    npm install --no-audit --no-fund --loglevel=error
    return
  fi
  # npm writes node_modules/.package-lock.json on every install: older than the lockfile means stale.
  if [ -f node_modules/.package-lock.json ] && ! [ package-lock.json -nt node_modules/.package-lock.json ]; then
    note "npm dependencies: up to date"
    return
  fi
  doing "installing npm dependencies (npm ci)"
  local log
  log="$(mktemp)"
  if npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
    cat "$log"
    rm -f "$log"
    return
  fi
  # npm 11 refuses a lockfile that lacks other platforms' optional packages
  # (npm/cli#4828), and a registry mirror without them cannot fix the lock.
  # npm install takes the lockfile's versions for this platform instead.
  if grep -q 'EUSAGE' "$log"; then
    rm -f "$log"
    doing "npm ci refused the lockfile as out of sync; installing with npm install instead"
    npm install --no-audit --no-fund --loglevel=error
    return
  fi
  cat "$log" >&2
  rm -f "$log"
  die "npm ci failed (see above)"
}

# skiff's flock addon (src/store/flock.c) is built against Node's C headers.
check_node_headers() {
  local dir
  if dir="$(node scripts/node-headers.mjs)"; then
    note "Node's headers: $dir"
    return
  fi
  # Node from nodejs.org, nvm or NodeSource ships them; Debian's nodejs has them in libnode-dev.
  if command -v dpkg-query >/dev/null 2>&1 && dpkg-query -S "$(readlink -f "$(command -v node)")" 2>/dev/null | grep -q '^nodejs:'; then
    is_root || die "Node's C headers are missing; install them as root: sudo apt-get install libnode-dev"
    doing "installing Node's C headers (libnode-dev)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libnode-dev
    node scripts/node-headers.mjs >/dev/null || die "libnode-dev did not bring node_api.h for $(node --version)"
    return
  fi
  die "Node's C headers (node_api.h) not found beside $(command -v node) (in <prefix>/include/node); install a Node that ships them (nodejs.org, NodeSource, nvm)"
}

# --- (c) build -----------------------------------------------------------
build() {
  local stamp=dist/.build-stamp newer=""
  if [ -f "$stamp" ]; then
    newer="$(find src guest scripts/postbuild.mjs scripts/node-headers.mjs scripts/bundle-cli.mjs tsconfig.json package.json -newer "$stamp" -print -quit 2>/dev/null || true)"
    if [ -z "$newer" ]; then
      note "build: up to date"
      return
    fi
  fi
  doing "building (${newer:-no previous build})"
  npm run --silent build || die "the build failed (see above); fix it and run ./setup.sh again"
}

# --- (d) skiff on PATH ---------------------------------------------------
link_cli() {
  local target="$repo/dist/cli/main.js" dir
  if is_root; then dir=/usr/local/bin; else dir="$HOME/.local/bin"; fi
  local link="$dir/skiff"
  if [ -f "$target" ] && [ ! -x "$target" ]; then chmod +x "$target"; fi
  if [ ! -f "$target" ]; then note "warning: $target is not built yet; $link will work once it is"; fi
  if [ -L "$link" ] && [ "$(readlink "$link")" = "$target" ]; then
    note "skiff on PATH: $link -> $target"
    return
  fi
  doing "linking $link -> $target"
  mkdir -p "$dir"
  ln -sfn "$target" "$link"
  case ":$PATH:" in
    *":$dir:"*) ;;
    *) echo "setup: note: $dir is not on your PATH; add it (e.g. in ~/.profile: export PATH=\"$dir:\$PATH\")" ;;
  esac
}

# --- (e) the tests' Debian repository and cloud disk (--test) -------------
test_repo() {
  if [ "$tests" = 0 ]; then return; fi
  # The cloud suite's disk (test/cloud/build-disk.sh, ~4 min of mmdebstrap on a fresh machine) is built
  # beside the repository, not later in the suite's beforeAll where nothing else runs: same file name as
  # the test computes (the script's hash), in the shared test cache, so the test finds it made.
  local cache="${SKIFF_TEST_CACHE:-$repo/.cache/test}" script="$repo/test/cloud/build-disk.sh"
  local disk="$cache/cloud-disk/$(sha256sum "$script" | cut -c1-16).qcow2" pid="" log="$cache/cloud-disk/build.log"
  if [ ! -f "$disk" ]; then
    mkdir -p "$cache/cloud-disk"
    echo "setup: building the cloud tests' disk in the background (log: $log)"
    "$script" "$disk" "${disk%.qcow2}.work" >"$log" 2>&1 &
    pid=$!
  fi
  # Quiet when done; re-made only when the layers' package list changes.
  "$repo/scripts/test-apt-repo.sh" "$repo/.cache/apt-repo" || { [ -z "$pid" ] || kill "$pid" 2>/dev/null; die "making the tests' Debian repository failed (see above)"; }
  note "tests' Debian repository: $repo/.cache/apt-repo"
  if [ -n "$pid" ]; then
    wait "$pid" || { tail -30 "$log" >&2; die "building the cloud tests' disk failed (the end of $log above)"; }
    echo "setup: cloud tests' disk ready: $disk"
  fi
  # skiff's own kernel (`skiff kernel build`, ~12 min of 2 cores), which test/vm/kernel.test.ts boots:
  # built in the background at the lowest CPU priority while the suites run, into the shared test cache.
  # Not waited for here: the test waits for it (one build per kernel at a time: a lock in the cache),
  # and the VM suite runs it last, so the build uses what CPU the suites leave idle. Started once the
  # repository and the cloud disk are made: beside them it took their disk (ionice does nothing under
  # mq-deadline) and set-up went from ~4 to ~9 minutes.
  local klog="$cache/kernel-build.log"
  if ! compgen -G "$cache/kernels/built/*/kernel.json" >/dev/null; then
    echo "setup: building skiff's kernel for the tests in the background (log: $klog)"
  fi
  mkdir -p "$cache/kernel-build-home"
  chmod 700 "$cache/kernel-build-home"
  # setsid puts it in a scheduling autogroup of its own, whose weight nice alone does not lower (the
  # first run had it take half the CPU from set-up and the suites): the autogroup's nice is set too,
  # and its disk I/O is in the idle class.
  SKIFF_HOME="$cache/kernel-build-home" SKIFF_CACHE="$cache" setsid sh -c \
    'echo 19 >/proc/self/autogroup 2>/dev/null; exec nice -n 19 ionice -c3 "$@"' sh \
    node "$repo/dist/cli/main.js" kernel build >"$klog" 2>&1 </dev/null &
  # The standard layers' images that test/vm/stdlib-layers.test.ts boots (three builds, ~8 min of two
  # cores cold: the suite's largest item when the test built them in its turn, with nothing beside it),
  # built the same way in the background (scripts/test-std-images.ts: `debian`, then the builds). Above
  # the kernel's priority, as the test comes before the kernel's, and below the suites'. The test waits
  # for a build still running (its lock in the cache) and finds the image made.
  local ilog="$cache/std-images-build.log"
  note "building the standard layers' test images in the background (log: $ilog)"
  mkdir -p "$cache/std-images-home"
  chmod 700 "$cache/std-images-home"
  SKIFF_HOME="$cache/std-images-home" SKIFF_CACHE="$cache" SKIFF_TEST_APT_REPO="$repo/.cache/apt-repo" setsid sh -c \
    'echo 10 >/proc/self/autogroup 2>/dev/null; exec nice -n 10 "$@"' sh \
    "$repo/node_modules/.bin/vite-node" "$repo/scripts/test-std-images.ts" >"$ilog" 2>&1 </dev/null &
}

install_packages
check_node
check_node_headers
install_npm
build
link_cli
test_repo
note "done"
