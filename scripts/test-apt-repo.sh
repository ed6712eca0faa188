#!/usr/bin/env bash
# The tests' Debian repository: every .deb that a minbase bootstrap plus the
# packages of the standard library layers (layers/*/layer.yml) need, with
# their dependencies, laid out as a Debian mirror of one suite (pool/ and
# dists/SUITE/main/binary-amd64/Packages, an unsigned Release) in DIR
# (default .cache/apt-repo). Tests serve it on 127.0.0.1 and point
# mmdebstrap and layer builds at it (`deb [trusted=yes] URL SUITE main`), so
# no test reaches past the host. Done again only when the package list
# changes. (Not a flat `./` repository: mmdebstrap finds no Essential
# packages in one.)
#
# The set is what mmdebstrap itself downloads for
# `--variant=minbase --include=<packages>` from the host's own apt sources:
# apt resolves the dependencies exactly as it will in a guest bootstrapped
# from the same set.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$repo/.cache/apt-repo}"
suite="${SKIFF_TEST_SUITE:-bookworm}"
# Bumped when what this script makes changes.
recipe=4

packages="$(node "$repo/scripts/layer-packages.mjs")"
key="$(printf 'recipe=%s\nsuite=%s\n%s\n' "$recipe" "$suite" "$packages" | sha256sum | cut -c1-16)"
if [ -f "$dir/.key" ] && [ "$(cat "$dir/.key")" = "$key" ] && [ -f "$dir/dists/$suite/Release" ]; then
  exit 0
fi

sources=""
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
  if [ -s "$f" ]; then sources="$f"; break; fi
done
[ -n "$sources" ] || { echo "test-apt-repo: no apt sources on this host (/etc/apt/sources.list[.d])" >&2; exit 1; }

echo "setup: making the tests' Debian repository in $dir ($(echo "$packages" | wc -l) layer packages + minbase)"
mkdir -p "$(dirname "$dir")"
tmp="$(mktemp -d "${dir%/}.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/repo/pool" "$tmp/repo/dists/$suite/main/binary-amd64"
include="$(echo "$packages" | paste -sd, -)"
# --skip=download/empty keeps the .debs in the chroot's apt cache; the
# customize hook copies them out; the chroot itself goes to /dev/null.
mmdebstrap --quiet --variant=minbase ${include:+--include="$include"} \
  --skip=download/empty --skip=essential/unlink \
  --customize-hook="sync-out /var/cache/apt/archives \"$tmp/repo/pool\"" \
  "$suite" /dev/null "$sources"
rm -rf "$tmp/repo/pool/partial" "$tmp/repo/pool/lock"
index="dists/$suite/main/binary-amd64"
# Priority is not copied from a .deb's control by dpkg-scanpackages but taken
# from an override file; minbase means "Priority: required", so it matters.
for deb in "$tmp/repo/pool"/*.deb; do
  dpkg-deb --show --showformat='${Package} ${Priority} ${Section}\n' "$deb"
done >"$tmp/override"
(cd "$tmp/repo" && dpkg-scanpackages --multiversion pool "$tmp/override" 2>/dev/null) >"$tmp/repo/$index/Packages"
gzip -9 -k "$tmp/repo/$index/Packages"
{
  printf 'Origin: skiff-test\nLabel: skiff-test\nSuite: %s\nCodename: %s\nArchitectures: amd64\nComponents: main\n' "$suite" "$suite"
  printf 'Date: %s\nSHA256:\n' "$(LC_ALL=C date -u -R)"
  for f in Packages Packages.gz; do
    printf ' %s %s main/binary-amd64/%s\n' "$(sha256sum "$tmp/repo/$index/$f" | cut -d' ' -f1)" "$(stat -c %s "$tmp/repo/$index/$f")" "$f"
  done
} >"$tmp/repo/dists/$suite/Release"
echo "$key" >"$tmp/repo/.key"
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
mv "$tmp/repo" "$dir"
echo "setup: tests' Debian repository ready: $(find "$dir" -name '*.deb' | wc -l) packages, $(du -sh "$dir" | cut -f1)"
