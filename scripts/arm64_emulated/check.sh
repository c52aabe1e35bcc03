#!/bin/bash
# usage: check.sh WORKDIR [QEMU_CPU]   (root, after setup.sh; QEMU_CPU: cortex-a76 (default), cortex-a72,
# cortex-a53, neoverse-n1)
# Raw outputs of the default int8 model on 4 shared images: x86 (this host), emulated ARM fed x86's
# letterboxed inputs, emulated ARM with its own pre-processing; then compares both ARM runs with x86.
# Exits 1 unless the same-input run is bit-identical to x86. Results: WORKDIR/sysroot/results/QEMU_CPU/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CPU=${2:-cortex-a76}
THREADS=${THREADS:-1}
MODEL=tflite_models/litepose-m-448-int8.tflite
IMAGES=(data/crowdpose/images/103319.jpg data/crowdpose/images/106848.jpg
        data/coco/images/000000196141.jpg data/aic/images/054d9ce9201beffc76e5ff2169d2af2f027002ca.jpg)
PY=${PYTHON:-python3}
for p in proc sys repo shared; do is_mnt "$R/$p" || { echo "$R/$p is not mounted: run setup.sh $1 first" >&2; exit 1; }; done

# qemu 7.2 (Debian 12) shows ARM programs the x86 host's /proc/cpuinfo, and LiteRT then segfaults while
# setting up XNNPACK (allocate_tensors): mount an ARM /proc/cpuinfo matching QEMU_CPU over it.
case $CPU in
    cortex-a53) part=0xd03 variant=0x0 rev=4 ;;
    cortex-a72) part=0xd08 variant=0x0 rev=3 ;;
    cortex-a76) part=0xd0b variant=0x4 rev=1 ;;
    neoverse-n1) part=0xd0c variant=0x4 rev=1 ;;
    *) echo "QEMU_CPU $CPU: no /proc/cpuinfo for it here (not 'max': qemu 7.2 mis-emulates SME)" >&2; exit 2 ;;
esac
features="fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"
case $CPU in cortex-a76|neoverse-n1) features="$features atomics fphp asimdhp asimdrdm lrcpc dcpop asimddp" ;; esac
for ((i = 0; i < $(nproc); i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %d\n\n' \
        "$i" "$features" "$variant" "$part" "$rev"
done > "$W/cpuinfo-$CPU"
while is_mnt "$R/proc/cpuinfo"; do umount "$R/proc/cpuinfo"; done
mount --bind "$W/cpuinfo-$CPU" "$R/proc/cpuinfo"

OUT=$R/results/$CPU; rm -rf "$OUT"; mkdir -p "$OUT"
echo "== x86 ($(uname -m))"
"$PY" "$HERE/dump_raw.py" --model "$REPO/$MODEL" --threads "$THREADS" --out "$OUT/x86" "${IMAGES[@]/#/$SHARED/}"
echo "== ARM ($CPU under qemu), x86's input tensors"
in_arm QEMU_CPU="$CPU" /opt/venv/bin/python /repo/scripts/arm64_emulated/dump_raw.py --model "/repo/$MODEL" \
    --threads "$THREADS" --out "/results/$CPU/arm-x86-inputs" --inputs-from "/results/$CPU/x86" "${IMAGES[@]/#//shared/}"
echo "== ARM ($CPU under qemu), its own decoding and letterbox"
in_arm QEMU_CPU="$CPU" /opt/venv/bin/python /repo/scripts/arm64_emulated/dump_raw.py --model "/repo/$MODEL" \
    --threads "$THREADS" --out "/results/$CPU/arm-own-inputs" "${IMAGES[@]/#//shared/}"

echo "== same input tensor: ARM vs x86 (must be identical)"
status=0
"$PY" "$HERE/compare_raw.py" "$OUT/arm-x86-inputs" "$OUT/x86" --json "$OUT/same-input.json" --require-identical || status=$?
echo "== own pre-processing: ARM vs x86 (OpenCV's resize differs on ARM: expect small differences)"
"$PY" "$HERE/compare_raw.py" "$OUT/arm-own-inputs" "$OUT/x86" --json "$OUT/own-preprocessing.json"
exit $status
