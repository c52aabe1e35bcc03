#!/bin/bash
# usage: teardown.sh WORKDIR [--purge]   (root)
# Unmounts what setup.sh and check.sh mounted and unregisters qemu-aarch64 if setup.sh registered it.
# The sysroot is kept for the next setup.sh unless --purge is given (then WORKDIR is deleted).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
for p in proc/cpuinfo proc dev sys repo shared; do
    while is_mnt "$R/$p"; do umount "$R/$p"; done
done
if [ -e "$W/.enabled-qemu-aarch64" ]; then
    update-binfmts --disable qemu-aarch64 || true
    rm "$W/.enabled-qemu-aarch64"
fi
if [ -e "$W/.mounted-binfmt_misc" ]; then
    umount /proc/sys/fs/binfmt_misc || true
    rm "$W/.mounted-binfmt_misc"
fi
if [ "${2:-}" = --purge ]; then
    # never delete through a mount that is still there (/dev, /sys, the repo, ...)
    if findmnt -rn -o TARGET | grep -qF "$R/"; then
        echo "still mounted under $R, not deleting:" >&2; findmnt -rn -o TARGET | grep -F "$R/" >&2; exit 1
    fi
    rm -rf --one-file-system "$W"
fi
echo "torn down: $(findmnt -rn -o TARGET | grep -cF "$R/" || true) mounts left under $R"
