#!/bin/bash
# usage: setup.sh WORKDIR   (root)
# Creates WORKDIR/sysroot: arm64 Debian 12 (debootstrap) with /opt/venv holding the repo's device install
# (`pip install` of the repo, no extras, versions pinned by requirements.txt); registers qemu-aarch64 with
# binfmt_misc; mounts /proc, /dev, /sys (read-only), the repo at /repo and the shared folder at /shared (both
# read-only). Finished steps are skipped, so it can be re-run after teardown.sh or a failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[ -d "$SHARED/data" ] || { echo "shared folder $SHARED has no data/ (set LITEPOSE_SHARED)" >&2; exit 1; }

if ! command -v qemu-aarch64-static >/dev/null || ! command -v update-binfmts >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update && apt-get install -y qemu-user-static binfmt-support debootstrap
fi
# markers let teardown.sh undo only what this script changed on the host
if ! is_mnt /proc/sys/fs/binfmt_misc; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && touch "$W/.mounted-binfmt_misc"
fi
if ! grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
    update-binfmts --enable qemu-aarch64 && touch "$W/.enabled-qemu-aarch64"
fi

# an interrupted debootstrap leaves $R/debootstrap behind: start again then
if [ ! -x "$R/usr/bin/python3" ] || [ -d "$R/debootstrap" ]; then
    debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$R" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
fi

mkdir -p "$R/repo" "$R/shared" "$R/results"
bind_ro() { is_mnt "$2" || { mount --bind "$1" "$2" && mount -o remount,bind,ro "$2"; }; }
is_mnt "$R/proc" || mount -t proc proc "$R/proc"
is_mnt "$R/dev" || mount --bind /dev "$R/dev"
# XNNPACK finds the CPU through /sys: without it LiteRT silently runs its builtin kernels (other int8 results)
bind_ro /sys "$R/sys"
bind_ro "$REPO" "$R/repo"
bind_ro "$(realpath "$SHARED")" "$R/shared"
cp /etc/resolv.conf "$R/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$R/etc/host-ca.crt"    # the host's CAs (e.g. a TLS-intercepting proxy)

if [ ! -e "$R/opt/venv/.litepose-installed" ]; then
    [ -x "$R/opt/venv/bin/python" ] || in_arm /usr/bin/python3 -m venv /opt/venv
    # pip builds in the source tree, and /repo is read-only: install from a copy
    rm -rf "$R/opt/litepose-src" && mkdir -p "$R/opt/litepose-src"
    tar -C "$REPO" --exclude=__pycache__ -c pyproject.toml README.md converter python_ref | tar -x -C "$R/opt/litepose-src"
    in_arm /opt/venv/bin/pip install -c /repo/requirements.txt /opt/litepose-src
    touch "$R/opt/venv/.litepose-installed"
fi
in_arm /opt/venv/bin/python -c "import platform, numpy, cv2, ai_edge_litert; print('sysroot ready:', platform.machine(), 'python', platform.python_version(), 'numpy', numpy.__version__, 'opencv', cv2.__version__)"
