# The kernel matrix's checks (see xtask/src/matrix.rs). The VM's /init sources this file; for
# the host column `cargo xtask matrix` runs it with sh directly. POSIX sh: busybox ash in the VM,
# dash on the host.
#
# Each check prints exactly one result line, `MATRIX <check> PASS|FAIL <detail>`, after its own
# output (prefixed with `[<check>] `, for the console log). Nothing else starts with `MATRIX `.
#
# Environment: EMBARGO_BIN (the release agent), MATRIX_DEMO, MATRIX_FIXTURES, MATRIX_RESTART
# (the demo binary and the two test executables), MATRIX_TUNNELS (VMs only: the tunnels test), MATRIX_CONFIG (the default policy),
# MATRIX_LOGS (a writable folder), MATRIX_QUICK (1: only the restart test's kill -9 cases),
# MATRIX_IP (iproute2's ip, by path: busybox's shell runs its own `ip` applet before PATH).

export NO_COLOR=1

# run_check NAME SECONDS DETAIL_FN COMMAND...: COMMAND under a deadline (SIGKILL after SECONDS),
# its output in $MATRIX_LOGS/NAME.log; DETAIL_FN LOG prints the result's detail.
run_check() {
    name=$1
    secs=$2
    detail_fn=$3
    shift 3
    log="$MATRIX_LOGS/$name.log"
    start=$(date +%s)
    timeout -s KILL "$secs" "$@" >"$log" 2>&1
    rc=$?
    took=$(($(date +%s) - start))
    sed "s/^/[$name] /" "$log"
    detail="$($detail_fn "$log")"
    if [ "$rc" -eq 0 ]; then
        echo "MATRIX $name PASS ${took}s $detail"
    elif [ "$rc" -eq 137 ]; then
        echo "MATRIX $name FAIL timed out after ${secs}s $detail"
    else
        echo "MATRIX $name FAIL exit $rc after ${took}s $detail"
    fi
}

# The XDP mode the demo's agent attached in: "native" or "generic".
demo_detail() {
    mode=$(grep -o '([a-z]* XDP)' "$1" | head -n 1 | tr -d '()' | cut -d ' ' -f 1)
    echo "xdp=${mode:-?}"
}

# The test harness's summary: "N passed; M failed".
test_detail() {
    grep 'test result:' "$1" | tail -n 1 | sed 's/.*test result: [A-Za-z]*\. //; s/; [0-9]* ignored.*//'
}

# Which API the agent attached the TC egress classifier through (it logs `api=tcx|netlink`):
# a veth of its own in a namespace of its own, the default policy, role outside with egress.
egress_check() {
    ns="embmx$$"
    log="$MATRIX_LOGS/egress.log"
    state="$MATRIX_LOGS/egress-state"
    start=$(date +%s)
    : >"$log"
    if ! { "$MATRIX_IP" netns add "$ns" &&
        "$MATRIX_IP" -n "$ns" link set lo up &&
        "$MATRIX_IP" -n "$ns" link add mxa type veth peer name mxb &&
        "$MATRIX_IP" -n "$ns" link set mxa up &&
        "$MATRIX_IP" -n "$ns" link set mxb up; } >>"$log" 2>&1; then
        sed "s/^/[egress] /" "$log"
        "$MATRIX_IP" netns del "$ns" 2>/dev/null
        echo "MATRIX egress FAIL could not build its namespace and veth"
        return
    fi
    nsenter --net="/run/netns/$ns" "$EMBARGO_BIN" run --config "$MATRIX_CONFIG" \
        --interface mxa:outside:egress --no-pin \
        --control-socket "$MATRIX_LOGS/egress.sock" \
        --audit-log "$MATRIX_LOGS/egress-audit.jsonl" \
        --events-log "$MATRIX_LOGS/egress-events.jsonl" \
        --state-dir "$state" >>"$log" 2>&1 &
    pid=$!
    i=0
    while [ "$i" -lt 120 ] && ! grep -q 'TC egress classifier attached' "$log" &&
        kill -0 "$pid" 2>/dev/null; do
        sleep 1
        i=$((i + 1))
    done
    api=$(grep 'TC egress classifier attached' "$log" | grep -o -E 'netlink|tcx' | head -n 1)
    kill "$pid" 2>/dev/null
    wait "$pid"
    "$MATRIX_IP" netns del "$ns"
    took=$(($(date +%s) - start))
    sed "s/^/[egress] /" "$log"
    if [ -n "$api" ]; then
        echo "MATRIX egress PASS ${took}s api=$api"
    else
        echo "MATRIX egress FAIL no 'TC egress classifier attached' line within 120s"
    fi
}

run_all() {
    # (1) The demo lab on the default policy, with the release agent.
    run_check demo 300 demo_detail "$MATRIX_DEMO" "$MATRIX_CONFIG"
    # (2) The BPF_PROG_TEST_RUN fixture tables (XDP and TC egress).
    run_check fixtures 600 test_detail "$MATRIX_FIXTURES" --test-threads=1
    # (3) Restarts: kill -9 keeps enforcing, a restart adopts (XDP and egress); all of them
    # unless quick.
    if [ "${MATRIX_QUICK:-0}" = 1 ]; then
        run_check restart 600 test_detail "$MATRIX_RESTART" --test-threads=1 \
            same_policy_restart_reuses_the_maps_and_counters \
            egress_enforcement_survives_a_kill_and_is_adopted
    else
        run_check restart 900 test_detail "$MATRIX_RESTART" --test-threads=1
    fi
    # (4) Which egress API this kernel gets.
    egress_check
    # (5) Uplinks that need modules the host lacks (tests/tests/tunnels.rs, #[ignore]d in a
    # plain run): GRE, IPIP, WireGuard, PPP, VLAN and bond. VMs only (MATRIX_TUNNELS unset on the
    # host).
    if [ -n "${MATRIX_TUNNELS:-}" ]; then
        run_check tunnels 600 test_detail "$MATRIX_TUNNELS" --ignored --test-threads=1
    fi
}
