#!/bin/sh
# /init of the kernel matrix's initramfs (written by `cargo xtask matrix`, see
# xtask/src/matrix.rs): mounts what the checks need, loads the modules, runs the checks
# (checks.sh) and powers off. The VM has no network device: every packet stays in its own
# namespaces.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TMPDIR=/tmp
export EMBARGO_BIN=/usr/bin/embargo
export MATRIX_DEMO=/matrix/embargo-demo MATRIX_FIXTURES=/matrix/fixtures
export MATRIX_RESTART=/matrix/restart MATRIX_TUNNELS=/matrix/tunnels
export MATRIX_CONFIG=/matrix/config/default.toml
export MATRIX_LOGS=/tmp/matrix MATRIX_IP=/usr/sbin/ip
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Ptys (tests/tests/tunnels.rs runs PPP over one): /dev/ptmx needs devpts at /dev/pts.
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
# Not bpffs: the agent mounts it where there is none (the demo and the tests check that it
# does; a fresh machine has none either).
mkdir -p "$MATRIX_LOGS"
# A fresh line: the firmware leaves escape sequences on the console's current one.
echo
echo "MATRIX kernel INFO $(uname -r)"
. /matrix/settings
modules_ok=1
while read -r module; do
    if ! insmod "/lib/modules/$module.ko"; then
        modules_ok=0
        echo "MATRIX modules FAIL insmod $module"
    fi
done </lib/modules/load-order
[ "$modules_ok" = 1 ] && echo "MATRIX modules PASS $(tr '\n' ' ' </lib/modules/load-order)"
. /matrix/checks.sh
run_all
echo "MATRIX done INFO"
sync
poweroff -f
