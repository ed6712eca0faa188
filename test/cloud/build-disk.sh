#!/usr/bin/env bash
# Builds a small bootable "cloud image" for the cloud test suite, the honest
# way a distribution does: a Debian bookworm system (kernel, systemd,
# OpenSSH, cloud-init, and cloud-guest-utils for cloud-init's growpart, as
# Debian's and Ubuntu's cloud images carry, so that --disk grows the root
# partition and filesystem on first boot) from mmdebstrap, on an MBR disk
# whose first partition (FAT) holds SYSLINUX, the kernel and its initramfs,
# and whose second (last, so it can grow) is the ext4 root. Rootless and
# loop-free: mkfs.fat/mtools/syslinux work on the image file, the root is
# `mke2fs -d`. Output: a qcow2 file.
#
# usage: build-disk.sh OUT.qcow2 WORKDIR
set -euo pipefail
out="$1"; work="$2"
rm -rf "$work"; mkdir -p "$work"
tree="$work/tree"

mmdebstrap --variant=minbase --mode=root \
  --include=linux-image-amd64,systemd-sysv,udev,openssh-server,cloud-init,cloud-guest-utils,ifupdown,isc-dhcp-client,sudo,netbase \
  --customize-hook='echo "LABEL=cloudroot / ext4 defaults 0 1" > "$1/etc/fstab"' \
  --customize-hook='rm -f "$1/etc/machine-id" && touch "$1/etc/machine-id"' \
  --customize-hook='echo "datasource_list: [ NoCloud, None ]" > "$1/etc/cloud/cloud.cfg.d/90-skiff-test.cfg"' \
  --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer || true' \
  bookworm "$tree" http://deb.debian.org/debian

kver="$(ls "$tree/lib/modules" | head -1)"
cp "$tree/boot/vmlinuz-$kver" "$work/vmlinuz"
cp "$tree/boot/initrd.img-$kver" "$work/initrd.img"
# Modules a VM never loads: drop them to keep the image small (the initramfs is already built).
for d in gpu media net/wireless infiniband staging sound isdn bluetooth; do
  rm -rf "$tree/lib/modules/$kver/kernel/drivers/$d" "$tree/lib/modules/$kver/kernel/$d"
done
rm -rf "$tree/usr/share/doc" "$tree/usr/share/man" "$tree/var/cache/apt"/*.bin "$tree/var/lib/apt/lists"/*_Packages

bootmib=64; rootmib=1536
total=$(( 1 + bootmib + rootmib ))
raw="$work/disk.raw"
truncate -s "${total}M" "$raw"
printf 'label: dos\nstart=2048, size=%d, type=c, bootable\nstart=%d, type=83\n' \
  $(( bootmib * 2048 )) $(( 2048 + bootmib * 2048 )) | sfdisk -q "$raw"
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$raw" bs=440 count=1 conv=notrunc status=none

boot="$work/boot.fat"
truncate -s "${bootmib}M" "$boot"
mkfs.fat -h 2048 -n BOOT "$boot" >/dev/null
cat > "$work/syslinux.cfg" <<CFG
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.img
  APPEND root=LABEL=cloudroot ro console=ttyS0,115200 net.ifnames=0
CFG
mcopy -i "$boot" "$work/vmlinuz" "$work/initrd.img" "$work/syslinux.cfg" ::
syslinux --install "$boot"
dd if="$boot" of="$raw" bs=1M seek=1 conv=notrunc status=none

root="$work/root.ext4"
mke2fs -q -t ext4 -L cloudroot -d "$tree" "$root" "${rootmib}M"
dd if="$root" of="$raw" bs=1M seek=$(( 1 + bootmib )) conv=notrunc,sparse status=none

qemu-img convert -f raw -O qcow2 "$raw" "$out.tmp"
mv "$out.tmp" "$out"
rm -rf "$work"
