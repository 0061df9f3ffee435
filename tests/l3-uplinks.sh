#!/bin/sh
# Layer-3 uplinks on a kernel that has their modules (the kernel matrix's Debian kernels; this
# repository's usual host has none of them built in): for IPIP (ARPHRD_TUNNEL) and GRE
# (ARPHRD_IPGRE) it builds two network namespaces joined by a veth, a tunnel between them, and runs `embargo run` on the receiving
# tunnel (`outside`, mode auto): the tunnel must be attached in generic mode, pings from a
# listed inner source must be dropped and counted against the entity, pings from an unlisted
# one must be answered. WireGuard is checked for attach only (no `wg` tool to give it a peer).
#
# Usage: l3-uplinks.sh EMBARGO_BIN   (root; needs `ip` and `ping`, busybox's will do)
# Prints one line per kind (`PASS kind`, `FAIL kind: why`, `SKIP kind: why`); exits non-zero
# if any kind failed. Not run by `cargo xtask test`: the kernel matrix calls it inside its VMs.
# Names carry the shell's pid; everything it creates goes with its namespaces.
set -u
BIN=${1:?usage: l3-uplinks.sh EMBARGO_BIN}
WORK=$(mktemp -d /tmp/embargo-l3-XXXXXX)
FAILED=0
A=l3a$$
B=l3b$$

cat >"$WORK/policy.toml" <<'EOF'
enforce = ["TEST"]
[[entities]]
id = "lab-drop"
name = "Lab Drop Entity"
action = "drop"
direction = "both"
designations = [{ authority = "TEST", regime = "l3", reference = "L3-lab-drop", listed_on = 2025-01-01, source = "l3" }]
networks = [{ prefixes = ["203.0.113.0/24"], guard_override = "test l3", evidence = { kind = "manual", source = "l3", retrieved = 2026-01-01, confidence = "high" } }]
EOF

cleanup() {
    [ -n "${AGENT:-}" ] && kill "$AGENT" 2>/dev/null && wait "$AGENT" 2>/dev/null
    AGENT=
    ip netns del "$A" 2>/dev/null
    ip netns del "$B" 2>/dev/null
}
trap 'cleanup; rm -rf "$WORK"' EXIT

# start_agent DEV: embargo on DEV in namespace A, outside, unpinned; waits for its status.
start_agent() {
    nsenter --net="/run/netns/$A" -- "$BIN" run --config "$WORK/policy.toml" \
        --interface "$1:outside" --no-pin --control-socket "$WORK/c.sock" \
        --audit-log "$WORK/audit.jsonl" --events-log "$WORK/events.jsonl" \
        --state-dir "$WORK/state" >"$WORK/agent.log" 2>&1 &
    AGENT=$!
    i=0
    while [ $i -lt 50 ]; do
        status >/dev/null 2>&1 && return 0
        sleep 0.2
        i=$((i + 1))
    done
    return 1
}

status() {
    nsenter --net="/run/netns/$A" -- "$BIN" status --control-socket "$WORK/c.sock"
}

# Column 6 of the entity's row is IN-DROP.
in_drops() {
    status | awk '$1 == "lab-drop" { print $6 }'
}

# mode DEV: the attach mode the agent reports for DEV.
mode() {
    status | awk -v d="$1" '$1 == d { print $4 }'
}

netns_pair() {
    ip netns add "$A" && ip netns add "$B" || return 1
    ip -n "$A" link add v0 type veth peer name v1 netns "$B" || return 1
    for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
    ip -n "$A" addr add 198.18.7.1/30 dev v0
    ip -n "$B" addr add 198.18.7.2/30 dev v1
    ip -n "$A" link set v0 up
    ip -n "$B" link set v1 up
}

tunnel_kind() {
    kind=$1
    if ! netns_pair; then
        echo "FAIL $kind: cannot build the namespaces"
        FAILED=1
        cleanup
        return
    fi
    if ! ip -n "$A" link add t0 type "$kind" local 198.18.7.1 remote 198.18.7.2 2>"$WORK/err"; then
        echo "SKIP $kind: $(cat "$WORK/err")"
        cleanup
        return
    fi
    ip -n "$B" link add t0 type "$kind" local 198.18.7.2 remote 198.18.7.1
    ip -n "$A" addr add 10.201.0.1/30 dev t0
    ip -n "$B" addr add 10.201.0.2/30 dev t0
    ip -n "$B" addr add 203.0.113.7/32 dev t0
    ip -n "$A" route add 203.0.113.7/32 dev t0
    ip -n "$A" link set t0 up
    ip -n "$B" link set t0 up
    for ns in "$A" "$B"; do
        ip netns exec "$ns" sh -c 'for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 >"$f"; done'
    done
    if ! start_agent t0; then
        echo "FAIL $kind: the agent did not start: $(tail -3 "$WORK/agent.log")"
        FAILED=1
        cleanup
        return
    fi
    m=$(mode t0)
    ip netns exec "$B" ping -c 3 -W 1 -I 203.0.113.7 10.201.0.1 >/dev/null 2>&1
    listed_rc=$?
    ip netns exec "$B" ping -c 3 -W 1 -I 10.201.0.2 10.201.0.1 >/dev/null 2>&1
    unlisted_rc=$?
    drops=$(in_drops)
    if [ "$m" != generic ]; then
        echo "FAIL $kind: attached in mode '$m', expected generic"
        FAILED=1
    elif [ "$listed_rc" -eq 0 ]; then
        echo "FAIL $kind: pings from a listed source were answered (drops counted: $drops)"
        FAILED=1
    elif [ "$unlisted_rc" -ne 0 ]; then
        echo "FAIL $kind: pings from an unlisted source were not answered"
        FAILED=1
    elif [ "${drops:-0}" -lt 3 ]; then
        echo "FAIL $kind: $drops inbound drops counted against lab-drop, expected 3"
        FAILED=1
    else
        echo "PASS $kind: generic, $drops listed pings dropped and counted, unlisted answered"
    fi
    cleanup
}

wireguard_attach() {
    ip netns add "$A" || return
    if ! ip -n "$A" link add t0 type wireguard 2>"$WORK/err"; then
        echo "SKIP wireguard: $(cat "$WORK/err")"
        cleanup
        return
    fi
    ip -n "$A" link set t0 up
    if start_agent t0 && [ "$(mode t0)" = generic ]; then
        echo "PASS wireguard: attached in generic mode"
    else
        echo "FAIL wireguard: $(tail -3 "$WORK/agent.log")"
        FAILED=1
    fi
    cleanup
}

for kind in ipip gre; do
    tunnel_kind "$kind"
done
wireguard_attach
exit $FAILED
