# Sourced by setup.sh, check.sh and teardown.sh: paths and helpers. Expects WORKDIR as $1.
[ $# -ge 1 ] || { echo "usage: $0 WORKDIR ..." >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "$0: needs root (chroot, mount, binfmt_misc)" >&2; exit 1; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SHARED=${LITEPOSE_SHARED:-$REPO/../shared}
mkdir -p "$1"
W=$(realpath "$1")
R=$(realpath -m "$W/sysroot")     # realpath: WORKDIR/sysroot may be a symlink; /proc/mounts lists real paths

is_mnt() { findmnt -rn --mountpoint "$1" >/dev/null; }

# Run a command inside the arm64 sysroot (binfmt_misc starts qemu-aarch64-static for each arm64 binary).
# Extra VAR=value arguments before the command are passed on (e.g. QEMU_CPU=cortex-a76).
in_arm() {
    local pass=() v
    for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL PIP_EXTRA_INDEX_URL; do
        [ -n "${!v:-}" ] && pass+=("$v=${!v}")
    done
    chroot "$R" /usr/bin/env -i HOME=/root PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
        PIP_CERT=/etc/host-ca.crt PIP_DEFAULT_TIMEOUT=180 PIP_DISABLE_PIP_VERSION_CHECK=1 "${pass[@]}" "$@"
}
