#!/usr/bin/env bash
# sluice benchmark harness.
#
# Starts, on 127.0.0.1 only and inside a temp dir:
#   - a mock OpenAI upstream (nginx, 1 worker, canned JSON / SSE answers),
#   - a reference reverse proxy (nginx proxy_pass, 2 workers) -> mock,
#   - sluice (build/sluice, 2 workers, working directory = the temp dir, so
#     its SQLite store sluice.db and spend spill file land there) -> mock,
# then drives each target with wrk in three scenarios and reports req/s,
# p50/p99, ratios against nginx, added latency and sluice memory. A fourth
# scenario (vkey64) drives sluice alone with the master key vs a virtual key
# (budget, limits, spend tracking) and checks the key's recorded spend. A
# fifth (router64) drives sluice alone with a one-deployment model vs a model
# group of 4 deployments (simple-shuffle), and the same group on a second
# sluice with routing_strategy latency-based-routing.
#
# Environment (all optional):
#   BENCH_SECONDS=10        length of each measurement, seconds
#   BENCH_QUICK=1           smoke run: 3 s measurements
#   BENCH_WARMUP=1          warm-up before each measurement, seconds
#   BENCH_ROUNDS=2          rounds per scenario (proxy order alternates)
#   BENCH_TARGETS=direct,nginx,sluice      subset of targets to run
#   BENCH_SCENARIOS=c64,c1,stream64,vkey64,router64
#                           subset of scenarios to run
#                           (vkey64 and router64 need the sluice target)
#   BENCH_PORT_BASE=N       first port to try (default: random 20000-39999)
#   BENCH_RESULTS_DIR=DIR   where latest.md and raw/ go (default bench/results)
#   BENCH_KEEP_TMP=1        keep the temp dir (configs, logs) after the run
#   BENCH_STRICT=1          exit 2 when a performance target is missed
#   BENCH_SLUICE_LOG=file   sluice's stderr (its log, one access line per
#                           request): "file" (temp dir; a summary is kept in
#                           results/raw/sluice.log) or "null" (/dev/null)
#   SLUICE_BIN=PATH         sluice binary (default build/sluice)
#   NGINX=PATH, WRK=PATH    tool overrides
#
# Exit status: 0 ok; 1 a measurement failed (non-2xx, socket errors, a
# process died, wrong answer) or setup failed; 2 targets missed (BENCH_STRICT).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")

if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
    MEASURE_S=${BENCH_SECONDS:-3}
else
    MEASURE_S=${BENCH_SECONDS:-10}
fi
WARMUP_S=${BENCH_WARMUP:-1}
ROUNDS=${BENCH_ROUNDS:-2}
TARGETS_CSV=${BENCH_TARGETS:-direct,nginx,sluice}
SCENARIOS_CSV=${BENCH_SCENARIOS:-c64,c1,stream64,vkey64,router64}
SLUICE_BIN=${SLUICE_BIN:-$REPO_DIR/build/sluice}
RESULTS_DIR=${BENCH_RESULTS_DIR:-$BENCH_DIR/results}
NGINX=${NGINX:-nginx}
WRK=${WRK:-wrk}
SLUICE_LOG_MODE=${BENCH_SLUICE_LOG:-file}
MASTER_KEY=sk-bench-master-key
WRK_TIMEOUT=5s
IDLE_RSS_LIMIT_KB=15360     # 15 MiB
TPUT_MIN_RATIO=0.5
VKEY_MIN_RATIO=0.9          # vkey64: virtual key req/s / master key req/s
VKEY_SPEND_WAIT_MAX=180     # vkey64: seconds to wait for the spend to be written
# Prices given to bench-model (the non-streaming deployment) and the usage the
# mock answers with (231 prompt + 24 completion tokens): the expected spend of
# one request, to cross-check the virtual key's recorded spend.
PRICE_IN=0.0000025
PRICE_OUT=0.00001
MOCK_PROMPT_TOKENS=231
MOCK_COMPLETION_TOKENS=24
VKEY_BODY='{"models": [], "max_budget": 1000000, "rpm_limit": 100000000, "tpm_limit": 100000000000}'
ROUTER_MIN_RATIO=0.95       # router64: group of 4 req/s / single deployment req/s
ROUTER_GROUP_SIZE=4         # router64: deployments in bench-group (all on the same mock)
ADDED_P50_MAX_RATIO=2

BODY_NONSTREAM=$BENCH_DIR/wrk/body-nonstream.json
BODY_STREAM=$BENCH_DIR/wrk/body-stream.json
LUA=$BENCH_DIR/wrk/chat.lua

# ---------------------------------------------------------------- helpers --

log() { printf '[bench] %s\n' "$*" >&2; }
warn() { printf '[bench] WARNING: %s\n' "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }
banner() {
    printf '\n[bench] !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
    printf '[bench] !!! %s\n' "$@" >&2
    printf '[bench] !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n' >&2
}

# fcalc EXPR [DECIMALS]: floating point arithmetic via awk.
fcalc() { awk -v d="${2:-2}" "BEGIN { printf \"%.\" d \"f\", ($1) }"; }
# fcmp EXPR: exit 0 when the awk boolean expression is true.
fcmp() { awk "BEGIN { exit !($1) }"; }
# us_to_ms MICROSECONDS
us_to_ms() { if [[ "$1" == "-" ]]; then printf -- '-'; else fcalc "$1 / 1000" 3; fi; }

has() { [[ ",$2," == *",$1,"* ]]; }

need_cmd() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found; install it (Debian: $2)"; }

port_in_use() { [[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]; }

pid_alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

rss_kb() { awk '/^VmRSS:/ { print $2; f = 1 } END { if (!f) print "-" }' "/proc/$1/status" 2>/dev/null || echo -; }
hwm_kb() { awk '/^VmHWM:/ { print $2; f = 1 } END { if (!f) print "-" }' "/proc/$1/status" 2>/dev/null || echo -; }
kb_to_mib() { if [[ "$1" == "-" ]]; then printf -- '-'; else fcalc "$1 / 1024" 1; fi; }

# cpu_snapshot: "total steal" jiffies from /proc/stat (guest time excluded,
# it is already counted in user/nice).
cpu_snapshot() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9; exit }' /proc/stat; }
steal_pct() { # steal_pct "T0 S0" "T1 S1"
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
        dt = y[1] - x[1]; ds = y[2] - x[2];
        if (dt <= 0) print "-"; else printf "%.0f", 100 * ds / dt }'
}

# ------------------------------------------------------------- preflight --

[[ "$MEASURE_S" =~ ^[0-9]+$ && "$MEASURE_S" -ge 1 ]] || die "BENCH_SECONDS must be a positive integer"
[[ "$WARMUP_S" =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a non-negative integer"
[[ "$ROUNDS" =~ ^[0-9]+$ && "$ROUNDS" -ge 1 ]] || die "BENCH_ROUNDS must be a positive integer"
[[ "$SLUICE_LOG_MODE" == file || "$SLUICE_LOG_MODE" == null ]] || die "BENCH_SLUICE_LOG must be 'file' or 'null'"

TARGETS=()
for t in direct nginx sluice; do has "$t" "$TARGETS_CSV" && TARGETS+=("$t"); done
for t in ${TARGETS_CSV//,/ }; do
    case "$t" in direct|nginx|sluice) ;; *) die "unknown target '$t' in BENCH_TARGETS (use direct,nginx,sluice)";; esac
done
[[ ${#TARGETS[@]} -gt 0 ]] || die "BENCH_TARGETS selects no target"
SCENARIOS=()
for s in c64 c1 stream64 vkey64 router64; do has "$s" "$SCENARIOS_CSV" && SCENARIOS+=("$s"); done
for s in ${SCENARIOS_CSV//,/ }; do
    case "$s" in c64|c1|stream64|vkey64|router64) ;; *) die "unknown scenario '$s' in BENCH_SCENARIOS (use c64,c1,stream64,vkey64,router64)";; esac
done
# vkey64 and router64 compare ways of calling sluice; without the sluice target
# there is nothing to measure. Drop them (they are in the default list) with a note.
for only_sluice in vkey64 router64; do
    if has "$only_sluice" "$SCENARIOS_CSV" && ! has sluice "$TARGETS_CSV"; then
        log "scenario $only_sluice skipped: it needs the sluice target (BENCH_TARGETS=$TARGETS_CSV)"
        kept=()
        for s in "${SCENARIOS[@]}"; do if [[ "$s" != "$only_sluice" ]]; then kept+=("$s"); fi; done
        SCENARIOS=("${kept[@]}")
        SCENARIOS_CSV=${SCENARIOS[*]:-}; SCENARIOS_CSV=${SCENARIOS_CSV// /,}
    fi
done
[[ ${#SCENARIOS[@]} -gt 0 ]] || die "BENCH_SCENARIOS selects no scenario"

need_cmd "$NGINX" "nginx-light (or nginx)"
need_cmd "$WRK" "wrk"
need_cmd curl "curl"
need_cmd ss "iproute2"
need_cmd awk "mawk"
for f in "$LUA" "$BODY_NONSTREAM" "$BODY_STREAM" "$BENCH_DIR/nginx/mock.conf.in" "$BENCH_DIR/nginx/proxy.conf.in"; do
    [[ -f "$f" ]] || die "missing $f"
done
if has sluice "$TARGETS_CSV"; then
    [[ -x "$SLUICE_BIN" ]] || die "sluice binary not found at $SLUICE_BIN (run 'make build', or set BENCH_TARGETS=direct,nginx)"
    # sluice runs with the temp dir as its working directory: make the path absolute.
    [[ "$SLUICE_BIN" == /* ]] || SLUICE_BIN=$PWD/$SLUICE_BIN
fi

# --------------------------------------------------------------- cleanup --

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
chmod 755 "$TMP"
# sluice writes one spend row per request to sluice.db (and its spill file)
# in the temp dir, plus its log: several GB for a full run.
if has sluice "$TARGETS_CSV"; then
    free_kb=$(df -Pk "$TMP" 2>/dev/null | awk 'NR == 2 { print $4 }' || true)
    if [[ -n "$free_kb" && "$free_kb" -lt $((4 * 1024 * 1024)) ]]; then
        warn "only $((free_kb / 1024)) MiB free in $TMP; a full run can need several GB (sluice.db, spill file, log)"
    fi
fi
PIDS=()          # long-running processes we started (stopped in reverse order)
SAMPLER_PID=""

# shellcheck disable=SC2317  # invoked through the EXIT trap
cleanup() {
    local rc=$?
    set +e
    if [[ -n "$SAMPLER_PID" ]]; then kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null; fi
    local i pid
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[$i]}
        pid_alive "$pid" && kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 30); do pid_alive "$pid" || break; sleep 0.1; done
        if pid_alive "$pid"; then
            warn "pid $pid did not stop on SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
    done
    if [[ "${BENCH_KEEP_TMP:-0}" == 1 ]]; then
        log "temp dir kept: $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ----------------------------------------------------------------- ports --

pick_ports() {
    local base=${BENCH_PORT_BASE:-$((20000 + RANDOM % 20000))}
    local p=$base chosen=()
    while [[ ${#chosen[@]} -lt 4 ]]; do
        [[ $p -lt $((base + 200)) && $p -lt 65535 ]] || die "no free ports found from $base"
        if ! port_in_use "$p"; then chosen+=("$p"); fi
        p=$((p + 1))
    done
    MOCK_PORT=${chosen[0]}
    PROXY_PORT=${chosen[1]}
    SLUICE_PORT=${chosen[2]}
    SLUICE2_PORT=${chosen[3]}   # router64's second sluice (latency-based-routing)
}

# check_listeners PORT PID NAME: every listening socket on PORT must belong to
# PID or to a direct child of PID (nginx workers). A leftover process with
# SO_REUSEPORT on the same port would silently take part of the connections.
check_listeners() {
    local port=$1 pid=$2 name=$3 lines line lpid ppid found=0
    lines=$(ss -Hltnp "sport = :$port" 2>/dev/null || true)
    [[ -n "$lines" ]] || die "$name (pid $pid): nothing listens on port $port"
    while IFS= read -r line; do
        [[ -n "$line" ]] || continue
        local pids
        pids=$(grep -o 'pid=[0-9]*' <<<"$line" | cut -d= -f2 | sort -u || true)
        if [[ -z "$pids" ]]; then
            die "port $port has a listener whose owner is not visible (stale process of another user?): $line"
        fi
        for lpid in $pids; do
            if [[ "$lpid" == "$pid" ]]; then found=1; continue; fi
            ppid=$(awk '/^PPid:/ { print $2 }' "/proc/$lpid/status" 2>/dev/null || echo "?")
            if [[ "$ppid" != "$pid" ]]; then
                die "port $port: listener held by pid $lpid ($(cat "/proc/$lpid/comm" 2>/dev/null || echo '?')), not by $name (pid $pid). A stale process (SO_REUSEPORT?) would take part of the load; stop it first. ss: $line"
            fi
            found=1
        done
    done <<<"$lines"
    [[ $found == 1 ]] || die "$name (pid $pid) does not listen on port $port"
}

# wait_http URL PID NAME [SECONDS]: wait until GET URL answers 200.
wait_http() {
    local url=$1 pid=$2 name=$3 limit=${4:-15} code i
    for ((i = 0; i < limit * 10; i++)); do
        pid_alive "$pid" || return 1
        code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$url" 2>/dev/null || true)
        [[ "$code" == 200 ]] && return 0
        sleep 0.1
    done
    return 1
}

render_nginx_conf() { # TEMPLATE OUT
    local user_line=""
    if [[ $(id -u) == 0 ]]; then user_line="user $(id -un) $(id -gn);"; fi
    sed -e "s|@TMP@|$TMP|g" -e "s|@MOCK_PORT@|$MOCK_PORT|g" -e "s|@PROXY_PORT@|$PROXY_PORT|g" \
        -e "s|@USER_LINE@|$user_line|g" "$1" >"$2"
}

# Subshells with exec keep $! equal to the real process; bash's plain
# "( cmd ) &" may fork once more, so use exec explicitly.
start_nginx() { # NAME CONF -> sets STARTED_PID
    local name=$1 conf=$2
    mkdir -p "$TMP/$name-tmp"
    "$NGINX" -t -q -p "$TMP" -e "$TMP/$name-error.log" -c "$conf" >"$TMP/$name-test.log" 2>&1 ||
        { cat "$TMP/$name-test.log" >&2; die "nginx config test failed for $name"; }
    (exec "$NGINX" -p "$TMP" -e "$TMP/$name-error.log" -c "$conf" >"$TMP/$name-stdout.log" 2>&1) &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

# ------------------------------------------------------------ scenarios --

SPILL_RUNS=0 SPILL_SEEN=0 SPILL_MAX=0   # spend spill file size after sluice runs
# Results, keyed "scenario|target|round".
declare -A R_RPS R_P50 R_P99 R_NON2XX R_SOCKERR R_STEAL R_STATUS R_REQS
declare -A BEST_ROUND    # "scenario|target" -> round number
declare -A TARGET_DEAD   # target -> reason
FAILURES=()

scenario_conns() { case $1 in c64|stream64|vkey64|router64) echo 64;; c1) echo 1;; esac; }
scenario_threads() { case $1 in c64|stream64|vkey64|router64) echo 2;; c1) echo 1;; esac; }
scenario_stream() { case $1 in stream64) echo 1;; *) echo 0;; esac; }
scenario_title() {
    case $1 in
        c64) echo "Non-streaming, 64 connections, 2 wrk threads";;
        c1) echo "Non-streaming, 1 connection, 1 wrk thread (latency)";;
        stream64) echo "Streaming (SSE, 21 chunks + [DONE]), 64 connections, 2 wrk threads";;
        vkey64) echo "sluice: virtual key (budget + spend tracking) vs master key, non-streaming, 64 connections, 2 wrk threads";;
        router64) echo "sluice: model group of $ROUTER_GROUP_SIZE deployments vs one deployment, non-streaming, 64 connections, 2 wrk threads";;
    esac
}
# Targets measured in a scenario. vkey64 drives sluice twice: "sluice" with the
# master key and "vkey" (a pseudo-target: the same sluice process) with the
# virtual key made at start-up. router64 drives "sluice" (model bench-model, one
# deployment), "rshuffle" (the same process, model bench-group: 4 deployments,
# simple-shuffle) and "rlatency" (a second sluice, same config plus
# routing_strategy latency-based-routing, model bench-group).
scenario_targets() {
    case $1 in
        vkey64) echo sluice vkey;;
        router64) echo sluice rshuffle rlatency;;
        *) echo "${TARGETS[*]}";;
    esac
}
target_title() { # TARGET [SCENARIO]
    case $1 in
        direct) echo "direct (wrk → mock)";;
        nginx) echo "nginx-proxy (wrk → nginx proxy_pass → mock)";;
        sluice)
            case ${2:-} in
                vkey64) echo "sluice, master key";;
                router64) echo "sluice, bench-model (1 deployment)";;
                *) echo "sluice (wrk → sluice → mock)";;
            esac;;
        vkey) echo "sluice, virtual key (max_budget, rpm/tpm limits, spend tracking)";;
        rshuffle) echo "sluice, bench-group ($ROUTER_GROUP_SIZE deployments, simple-shuffle)";;
        rlatency) echo "sluice #2, bench-group ($ROUTER_GROUP_SIZE deployments, latency-based-routing)";;
    esac
}
# The process behind a target (vkey and rshuffle are sluice; rlatency is the
# second sluice, started only for router64).
target_proc() { case $1 in vkey|rshuffle) echo sluice;; rlatency) echo sluice2;; *) echo "$1";; esac; }
# The BENCH_TARGETS entry a target needs.
target_needs() { case $(target_proc "$1") in sluice2) echo sluice;; *) target_proc "$1";; esac; }
target_pid() { case $1 in direct) echo "$MOCK_PID";; nginx) echo "$PROXY_PID";; sluice|vkey|rshuffle) echo "$SLUICE_PID";; rlatency) echo "$SLUICE2_PID";; esac; }
target_port() { case $1 in direct) echo "$MOCK_PORT";; nginx) echo "$PROXY_PORT";; sluice|vkey|rshuffle) echo "$SLUICE_PORT";; rlatency) echo "$SLUICE2_PORT";; esac; }
# Bearer key wrk and the validation request send (the mock and nginx ignore it).
target_key() { case $1 in vkey) echo "$VKEY";; *) echo "$MASTER_KEY";; esac; }
# Request body file: the router64 group targets ask for model bench-group.
target_body() { # TARGET STREAM
    if [[ "$2" == 1 ]]; then echo "$BODY_STREAM"
    elif [[ "$1" == rshuffle || "$1" == rlatency ]]; then echo "$BODY_GROUP"
    else echo "$BODY_NONSTREAM"; fi
}

# URL each target is driven at. Streaming requests go to the mock's /stream
# prefix directly and through nginx; sluice routes them there by model name
# (bench-stream's api_base), so sluice always gets /v1/chat/completions.
target_url() { # TARGET STREAM
    local port prefix=""
    port=$(target_port "$1")
    if [[ "$2" == 1 && "$(target_proc "$1")" != sluice ]]; then prefix=/stream; fi
    echo "http://127.0.0.1:$port$prefix/v1/chat/completions"
}

# validate_target TARGET STREAM: one request with curl; check status and shape.
validate_target() {
    local target=$1 stream=$2 url body out code
    url=$(target_url "$target" "$stream")
    body=$(target_body "$target" "$stream")
    out=$TMP/validate-$target-$stream.out
    code=$(curl -s -m 10 -o "$out" -w '%{http_code}' -X POST \
        -H "Authorization: Bearer $(target_key "$target")" -H 'Content-Type: application/json' \
        --data-binary "@$body" "$url" 2>/dev/null || true)
    local problem=""
    if [[ "$code" != 200 ]]; then
        problem="HTTP status '$code' (expected 200)"
    elif [[ "$stream" == 1 ]]; then
        grep -q '^data: \[DONE\]' "$out" || problem="stream body lacks 'data: [DONE]'"
        grep -q 'chat.completion.chunk' "$out" || problem="stream body lacks chat.completion.chunk events"
    else
        grep -q '"chat.completion"' "$out" || problem="body is not a chat.completion object"
        grep -q '"usage"' "$out" || problem="body lacks usage"
    fi
    if [[ -n "$problem" ]]; then
        VALIDATION_PROBLEM="$problem; response: $(head -c 200 "$out" 2>/dev/null | tr '\n' ' ')"
        banner "$target: validation request to $url failed: $problem" \
            "response (first 600 bytes): $(head -c 600 "$out" 2>/dev/null | tr '\n' ' ')"
        return 1
    fi
    return 0
}

# json_str NAME FILE / json_num NAME FILE: first "NAME": value in a JSON file
# (flat grep, enough for sluice's management answers; no jq needed).
json_str() { grep -o "\"$1\": *\"[^\"]*\"" "$2" 2>/dev/null | head -n 1 | sed 's/.*: *"\(.*\)"$/\1/' || true; }
json_num() { grep -o "\"$1\": *-\{0,1\}[0-9][0-9.eE+-]*" "$2" 2>/dev/null | head -n 1 | sed 's/.*: *//' || true; }

# create_vkey: POST /key/generate with the master key; the answer goes to
# $TMP/key-generate.out. Prints nothing on success, else the problem.
create_vkey() {
    local out=$TMP/key-generate.out code key
    code=$(curl -s -m 10 -o "$out" -w '%{http_code}' -X POST \
        -H "Authorization: Bearer $MASTER_KEY" -H 'Content-Type: application/json' \
        --data-binary "$VKEY_BODY" "http://127.0.0.1:$SLUICE_PORT/key/generate" 2>/dev/null || true)
    key=$(json_str key "$out")
    if [[ "$code" != 200 ]]; then
        echo "HTTP status '$code' (expected 200); response: $(head -c 300 "$out" 2>/dev/null | tr '\n' ' ')"
    elif [[ "$key" != sk-* ]]; then
        echo "no 'key' field starting with sk- in the response: $(head -c 300 "$out" 2>/dev/null | tr '\n' ' ')"
    fi
}

# read_vkey_spend: GET /key/info?key=VKEY with the master key; prints
# info.spend, or fails.
read_vkey_spend() {
    local out=$TMP/key-info.out code spend
    code=$(curl -s -m 5 -o "$out" -w '%{http_code}' -H "Authorization: Bearer $MASTER_KEY" \
        "http://127.0.0.1:$SLUICE_PORT/key/info?key=$VKEY" 2>/dev/null || true)
    [[ "$code" == 200 ]] || return 1
    spend=$(json_num spend "$out")
    [[ -n "$spend" ]] || return 1
    echo "$spend"
}

# group_spread TARGET N: N non-streaming requests to TARGET; prints the
# deployments that served them (x-litellm-model-id) as "id:count ...".
group_spread() {
    local target=$1 n=$2 url body i
    url=$(target_url "$target" 0)
    body=$(target_body "$target" 0)
    for ((i = 0; i < n; i++)); do
        curl -s -m 10 -o /dev/null -D - -X POST \
            -H "Authorization: Bearer $(target_key "$target")" -H 'Content-Type: application/json' \
            --data-binary "@$body" "$url" 2>/dev/null |
            tr -d '\r' | awk -F': *' 'tolower($1) == "x-litellm-model-id" { print $2 }' || true
    done | sort | uniq -c | awk '{ printf "%s%s:%s", (NR > 1 ? " " : ""), $2, $1 }'
}

# run_wrk OUTFILE THREADS CONNS SECONDS URL BODY KEY [--latency]
# KEY is the bearer key chat.lua sends (its second script argument).
run_wrk() {
    local out=$1 threads=$2 conns=$3 secs=$4 url=$5 body=$6 key=$7
    shift 7
    "$WRK" "$@" -t "$threads" -c "$conns" -d "${secs}s" --timeout "$WRK_TIMEOUT" \
        -s "$LUA" "$url" -- "$body" "$key" >"$out" 2>&1
}

# start_sampler PID FILE: record VmRSS (kB) every 0.25 s. Uses bash builtins
# only, so the sampler itself takes next to no CPU from the run it watches.
start_sampler() {
    local pid=$1 file=$2
    (
        while [[ -r /proc/$pid/status ]]; do
            while read -r k v _; do
                if [[ "$k" == VmRSS: ]]; then echo "$v"; break; fi
            done <"/proc/$pid/status" 2>/dev/null || exit 0
            sleep 0.25
        done
    ) >>"$file" &
    SAMPLER_PID=$!
}
stop_sampler() {
    if [[ -n "$SAMPLER_PID" ]]; then
        kill "$SAMPLER_PID" 2>/dev/null || true
        wait "$SAMPLER_PID" 2>/dev/null || true
        SAMPLER_PID=""
    fi
}

# field NAME LINE: value of NAME=... in a BENCH_RESULT line.
field_of() { grep -o " $1=[0-9.]*" <<<"$2" | cut -d= -f2; }

# measure SCENARIO TARGET ROUND
measure() {
    local scen=$1 target=$2 round=$3
    local key="$scen|$target|$round"
    local conns threads stream url body pid raw proc bearer
    conns=$(scenario_conns "$scen"); threads=$(scenario_threads "$scen"); stream=$(scenario_stream "$scen")
    url=$(target_url "$target" "$stream")
    body=$(target_body "$target" "$stream")
    pid=$(target_pid "$target")
    proc=$(target_proc "$target")
    raw=$RESULTS_DIR/raw/$scen-$target-r$round.txt
    R_STATUS[$key]=ok

    if [[ -n "${TARGET_DEAD[$proc]:-}" ]]; then
        R_STATUS[$key]="skipped: ${TARGET_DEAD[$proc]}"
        return 0
    fi
    if [[ "$target" == vkey && -z "$VKEY" ]]; then
        R_STATUS[$key]="skipped: no virtual key ($VKEY_PROBLEM)"
        return 0
    fi
    bearer=$(target_key "$target")

    log "$scen round $round: $target ($conns conn, $threads thr, ${WARMUP_S}s warm-up + ${MEASURE_S}s) $url"
    if [[ "$WARMUP_S" -gt 0 ]]; then
        run_wrk "$TMP/warmup.txt" "$threads" "$conns" "$WARMUP_S" "$url" "$body" "$bearer" || true
        local wn
        wn=$(grep -o 'non2xx=[0-9]*' "$TMP/warmup.txt" | cut -d= -f2 || true)
        if [[ -n "$wn" && "$wn" != 0 ]]; then
            warn "$target: $wn non-2xx responses during warm-up"
        fi
        # Requests sent with the virtual key, for the spend cross-check.
        if [[ "$target" == vkey ]]; then
            local wr
            wr=$(grep -o 'requests=[0-9]*' "$TMP/warmup.txt" | cut -d= -f2 || true)
            VKEY_REQS=$((VKEY_REQS + ${wr:-0})); VKEY_WRK_RUNS=$((VKEY_WRK_RUNS + 1))
        fi
    fi

    local sample_file=""
    if [[ "$proc" == sluice && "$conns" -gt 1 ]]; then
        sample_file=$TMP/rss-samples.txt
        start_sampler "$pid" "$sample_file"
    fi
    local snap0 snap1 wrk_rc=0
    snap0=$(cpu_snapshot)
    run_wrk "$raw" "$threads" "$conns" "$MEASURE_S" "$url" "$body" "$bearer" --latency || wrk_rc=$?
    snap1=$(cpu_snapshot)
    if [[ -n "$sample_file" ]]; then stop_sampler; fi
    R_STEAL[$key]=$(steal_pct "$snap0" "$snap1")
    # sluice's spend accumulator keeps a bounded number of rows in memory
    # between flushes and appends the rest to its spill file (drained by the
    # flusher later, so the file can be empty again at the end of the run).
    if [[ "$proc" == sluice ]]; then
        local spill
        spill=$(stat -c %s "$TMP/sluice-spend-spill.jsonl" 2>/dev/null || echo 0)
        SPILL_RUNS=$((SPILL_RUNS + 1))
        if [[ "$spill" -gt 0 ]]; then
            SPILL_SEEN=$((SPILL_SEEN + 1))
            [[ "$spill" -le "$SPILL_MAX" ]] || SPILL_MAX=$spill
        fi
    fi

    local line
    line=$(grep '^BENCH_RESULT ' "$raw" | tail -n 1 || true)
    if [[ $wrk_rc != 0 || -z "$line" ]]; then
        R_STATUS[$key]="FAIL: wrk exited $wrk_rc without a result"
        banner "$scen/$target round $round: wrk failed (exit $wrk_rc); output in $raw" \
            "$(tail -n 5 "$raw" | tr '\n' ' ')"
        FAILURES+=("$scen/$target round $round: wrk failed")
    else
        R_REQS[$key]=$(field_of requests "$line")
        if [[ "$target" == vkey ]]; then
            VKEY_REQS=$((VKEY_REQS + R_REQS[$key])); VKEY_WRK_RUNS=$((VKEY_WRK_RUNS + 1))
        fi
        R_RPS[$key]=$(field_of rps "$line")
        R_P50[$key]=$(field_of p50_us "$line")
        R_P99[$key]=$(field_of p99_us "$line")
        R_NON2XX[$key]=$(field_of non2xx "$line")
        local ec er ew et
        ec=$(field_of err_connect "$line"); er=$(field_of err_read "$line"); ew=$(field_of err_write "$line"); et=$(field_of err_timeout "$line")
        R_SOCKERR[$key]="connect $ec, read $er, write $ew, timeout $et"
        # Cross-check with wrk's own text output.
        local text_non2xx
        text_non2xx=$(awk -F: '/Non-2xx or 3xx responses/ { gsub(/ /, "", $2); print $2 }' "$raw")
        if [[ -n "$text_non2xx" && "$text_non2xx" != "${R_NON2XX[$key]}" ]]; then
            R_NON2XX[$key]=$text_non2xx
        fi
        if [[ "${R_NON2XX[$key]}" != 0 ]]; then
            R_STATUS[$key]="FAIL: ${R_NON2XX[$key]} non-2xx responses"
            banner "$scen/$target round $round: ${R_NON2XX[$key]} NON-2xx RESPONSES out of ${R_REQS[$key]} requests (raw: $raw)"
            FAILURES+=("$scen/$target round $round: ${R_NON2XX[$key]} non-2xx of ${R_REQS[$key]}")
        elif [[ $((ec + er + ew + et)) != 0 ]]; then
            R_STATUS[$key]="FAIL: socket errors (${R_SOCKERR[$key]})"
            banner "$scen/$target round $round: socket errors: ${R_SOCKERR[$key]} (raw: $raw)"
            FAILURES+=("$scen/$target round $round: socket errors (${R_SOCKERR[$key]})")
        elif [[ "${R_REQS[$key]}" == 0 ]]; then
            R_STATUS[$key]="FAIL: no request completed"
            banner "$scen/$target round $round: no request completed (raw: $raw)"
            FAILURES+=("$scen/$target round $round: no request completed")
        fi
        log "  -> ${R_RPS[$key]} req/s, p50 $(us_to_ms "${R_P50[$key]}") ms, p99 $(us_to_ms "${R_P99[$key]}") ms, non-2xx ${R_NON2XX[$key]}, steal ${R_STEAL[$key]}%  [${R_STATUS[$key]}]"
    fi

    if ! pid_alive "$pid"; then
        TARGET_DEAD[$proc]="process exited during $scen round $round"
        R_STATUS[$key]="FAIL: $proc process exited"
        banner "$proc (pid $pid) EXITED during $scen round $round"
        FAILURES+=("$proc process exited during $scen round $round")
        if [[ "$proc" == sluice ]]; then
            log "last lines of the sluice log:"; tail -n 20 "$TMP/sluice.log" >&2 || true
        elif [[ "$proc" == sluice2 ]]; then
            log "last lines of the second sluice's log:"; tail -n 20 "$TMP/sluice2/sluice.log" >&2 || true
        fi
    fi
}

# pick_best SCENARIO TARGET: best successful round (max req/s for the
# throughput scenarios, min p50 for the 1-connection latency scenario).
pick_best() {
    local scen=$1 target=$2 r best="" key
    for ((r = 1; r <= ROUNDS; r++)); do
        key="$scen|$target|$r"
        [[ "${R_STATUS[$key]:-}" == ok ]] || continue
        if [[ -z "$best" ]]; then best=$r; continue; fi
        if [[ "$scen" == c1 ]]; then
            fcmp "${R_P50[$key]} < ${R_P50[$scen|$target|$best]}" && best=$r
        else
            fcmp "${R_RPS[$key]} > ${R_RPS[$scen|$target|$best]}" && best=$r
        fi
    done
    BEST_ROUND["$scen|$target"]=$best
}

# ------------------------------------------------------------------ main --

pick_ports
log "temp dir $TMP; ports: mock $MOCK_PORT, nginx-proxy $PROXY_PORT, sluice $SLUICE_PORT, sluice #2 (router64) $SLUICE2_PORT"
log "targets: ${TARGETS[*]}; scenarios: ${SCENARIOS[*]}; ${ROUNDS} round(s) x (${WARMUP_S}s warm-up + ${MEASURE_S}s)"
rm -rf "$RESULTS_DIR/raw"
mkdir -p "$RESULTS_DIR/raw"
STEAL_START=$(cpu_snapshot)
START_EPOCH=$(date +%s)
LOAD_START=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo -)

MOCK_PID="" PROXY_PID="" SLUICE_PID="" SLUICE2_PID="" BODY_GROUP=""
render_nginx_conf "$BENCH_DIR/nginx/mock.conf.in" "$TMP/mock.conf"
start_nginx mock "$TMP/mock.conf"; MOCK_PID=$STARTED_PID
for _ in $(seq 1 50); do port_in_use "$MOCK_PORT" && break; pid_alive "$MOCK_PID" || break; sleep 0.1; done
pid_alive "$MOCK_PID" || { cat "$TMP/mock-error.log" >&2 || true; die "mock nginx failed to start"; }

if has nginx "$TARGETS_CSV"; then
    render_nginx_conf "$BENCH_DIR/nginx/proxy.conf.in" "$TMP/proxy.conf"
    start_nginx proxy "$TMP/proxy.conf"; PROXY_PID=$STARTED_PID
    for _ in $(seq 1 50); do port_in_use "$PROXY_PORT" && break; pid_alive "$PROXY_PID" || break; sleep 0.1; done
    pid_alive "$PROXY_PID" || { cat "$TMP/proxy-error.log" >&2 || true; die "nginx proxy failed to start"; }
fi

# start_sluice NAME DIR PORT CONFIG LOG: sluice with DIR as its working
# directory (its embedded store ./sluice.db with -wal/-shm and its spend spill
# file ./sluice-spend-spill.jsonl are created there and deleted with the temp
# dir), stderr to LOG; waits for GET /health/liveliness. Sets STARTED_PID.
start_sluice() {
    local name=$1 dir=$2 port=$3 conf=$4 logf=$5
    (cd "$dir" && exec "$SLUICE_BIN" --config "$conf" --port "$port" --host 127.0.0.1 --num_workers 2 \
        >"$logf" 2>&1) &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    if ! wait_http "http://127.0.0.1:$port/health/liveliness" "$STARTED_PID" "$name" 15; then
        log "$name log:"; tail -n 30 "$logf" >&2 || true
        if pid_alive "$STARTED_PID"; then
            die "$name (pid $STARTED_PID) did not answer 200 on GET /health/liveliness within 15 s"
        else
            die "$name exited during start-up"
        fi
    fi
}

SLUICE_IDLE_RSS=- SLUICE_PEAK_RSS=- SLUICE_HWM=-
if has sluice "$TARGETS_CSV"; then
    cat >"$TMP/sluice.yaml" <<EOF
model_list:
  - model_name: bench-model
    litellm_params:
      model: openai/bench-upstream
      api_base: "http://127.0.0.1:$MOCK_PORT/v1"
      api_key: sk-upstream
      input_cost_per_token: $PRICE_IN
      output_cost_per_token: $PRICE_OUT
  - model_name: bench-stream
    litellm_params:
      model: openai/bench-upstream
      api_base: "http://127.0.0.1:$MOCK_PORT/stream/v1"
      api_key: sk-upstream
EOF
    # router64: bench-group, ROUTER_GROUP_SIZE deployments that differ from
    # bench-model only in their id (same mock, same prices), so each request
    # costs the same work apart from the routing decision.
    if has router64 "$SCENARIOS_CSV"; then
        for ((i = 1; i <= ROUTER_GROUP_SIZE; i++)); do
            cat >>"$TMP/sluice.yaml" <<EOF
  - model_name: bench-group
    litellm_params:
      model: openai/bench-upstream
      api_base: "http://127.0.0.1:$MOCK_PORT/v1"
      api_key: sk-upstream
      input_cost_per_token: $PRICE_IN
      output_cost_per_token: $PRICE_OUT
    model_info:
      id: bench-group-$i
EOF
        done
    fi
    cat >>"$TMP/sluice.yaml" <<EOF
general_settings:
  master_key: $MASTER_KEY
  proxy_batch_write_at: 1
EOF
    if [[ "$SLUICE_LOG_MODE" == null ]]; then SLUICE_LOG_DEST=/dev/null; else SLUICE_LOG_DEST=$TMP/sluice.log; fi
    start_sluice sluice "$TMP" "$SLUICE_PORT" "$TMP/sluice.yaml" "$SLUICE_LOG_DEST"
    SLUICE_PID=$STARTED_PID
    sleep 0.5
    SLUICE_IDLE_RSS=$(rss_kb "$SLUICE_PID")
    log "sluice up (pid $SLUICE_PID), idle RSS $(kb_to_mib "$SLUICE_IDLE_RSS") MiB"
    # router64: routing_strategy is one per router, so latency-based-routing
    # needs its own process: the same config plus router_settings.
    if has router64 "$SCENARIOS_CSV"; then
        mkdir -p "$TMP/sluice2"
        { cat "$TMP/sluice.yaml"; printf 'router_settings:\n  routing_strategy: latency-based-routing\n'; } >"$TMP/sluice2/sluice.yaml"
        if [[ "$SLUICE_LOG_MODE" == null ]]; then SLUICE2_LOG_DEST=/dev/null; else SLUICE2_LOG_DEST=$TMP/sluice2/sluice.log; fi
        start_sluice "sluice #2 (latency-based-routing)" "$TMP/sluice2" "$SLUICE2_PORT" "$TMP/sluice2/sluice.yaml" "$SLUICE2_LOG_DEST"
        SLUICE2_PID=$STARTED_PID
        log "sluice #2 (latency-based-routing) up (pid $SLUICE2_PID)"
    fi
    # request body for bench-group
    sed 's/"model":"bench-model"/"model":"bench-group"/' "$BODY_NONSTREAM" >"$TMP/body-group.json"
    grep -q '"model":"bench-group"' "$TMP/body-group.json" || die "could not make the bench-group body from $BODY_NONSTREAM"
    BODY_GROUP=$TMP/body-group.json
fi

check_all_listeners() {
    check_listeners "$MOCK_PORT" "$MOCK_PID" "mock nginx"
    [[ -z "$PROXY_PID" ]] || check_listeners "$PROXY_PORT" "$PROXY_PID" "nginx proxy"
    [[ -z "$SLUICE_PID" || -n "${TARGET_DEAD[sluice]:-}" ]] || check_listeners "$SLUICE_PORT" "$SLUICE_PID" "sluice"
    [[ -z "$SLUICE2_PID" || -n "${TARGET_DEAD[sluice2]:-}" ]] || check_listeners "$SLUICE2_PORT" "$SLUICE2_PID" "sluice #2"
}
check_all_listeners

# vkey64: make the virtual key with the management API (master key auth).
VKEY="" VKEY_PROBLEM="" VKEY_REQS=0 VKEY_WRK_RUNS=0
if has vkey64 "$SCENARIOS_CSV"; then
    VKEY_PROBLEM=$(create_vkey) || true
    if [[ -z "$VKEY_PROBLEM" ]]; then
        VKEY=$(json_str "key" "$TMP/key-generate.out")
        log "virtual key created: ${VKEY:0:6}…${VKEY: -4} (POST /key/generate $VKEY_BODY)"
    else
        banner "vkey64: POST /key/generate failed: $VKEY_PROBLEM"
        FAILURES+=("vkey64: could not create the virtual key: $VKEY_PROBLEM")
    fi
fi

# One validation request per target and request kind before any load.
VALID_FAILED=()
need_stream=0 need_plain=0
for s in "${SCENARIOS[@]}"; do
    if [[ $(scenario_stream "$s") == 1 ]]; then need_stream=1; else need_plain=1; fi
done
for t in "${TARGETS[@]}"; do
    for st in 0 1; do
        [[ $st == 0 && $need_plain == 0 ]] && continue
        [[ $st == 1 && $need_stream == 0 ]] && continue
        if ! validate_target "$t" "$st"; then
            VALID_FAILED+=("$t/stream=$st")
            FAILURES+=("$t: validation request failed (stream=$st): $VALIDATION_PROBLEM")
        fi
    done
done
if [[ -n "$VKEY" ]]; then
    if validate_target vkey 0; then
        VKEY_REQS=$((VKEY_REQS + 1))
    else
        VALID_FAILED+=("vkey/stream=0")
        FAILURES+=("vkey (sluice, virtual key): validation request failed: $VALIDATION_PROBLEM")
    fi
fi
# router64: the group targets get a validation request too, then a few more to
# see that the group really spreads its calls: simple-shuffle must have used
# more than one of the 4 deployments in ROUTER_SPREAD_CALLS calls (latency-based
# may settle on one: reported only).
ROUTER_SPREAD_CALLS=16
declare -A ROUTER_SPREAD   # target -> "id:count ..." seen in the spread calls
declare -A ROUTER_DISTINCT # target -> number of distinct deployments seen
if has router64 "$SCENARIOS_CSV"; then
    for t in rshuffle rlatency; do
        if ! validate_target "$t" 0; then
            VALID_FAILED+=("$t/stream=0")
            FAILURES+=("$t ($(target_title "$t")): validation request failed: $VALIDATION_PROBLEM")
            continue
        fi
        ROUTER_SPREAD[$t]=$(group_spread "$t" "$ROUTER_SPREAD_CALLS")
        ROUTER_DISTINCT[$t]=$(wc -w <<<"${ROUTER_SPREAD[$t]}")
        log "router64 $t: deployments used by $ROUTER_SPREAD_CALLS calls: ${ROUTER_SPREAD[$t]:-none}"
        if [[ "$t" == rshuffle && "${ROUTER_DISTINCT[$t]}" -lt 2 ]]; then
            banner "router64: simple-shuffle used ${ROUTER_DISTINCT[$t]} deployment(s) of bench-group in $ROUTER_SPREAD_CALLS calls (${ROUTER_SPREAD[$t]:-none}); the group is not being load-balanced"
            FAILURES+=("router64: bench-group (simple-shuffle) used ${ROUTER_DISTINCT[$t]} deployment(s) in $ROUTER_SPREAD_CALLS calls: ${ROUTER_SPREAD[$t]:-none}")
        fi
    done
fi
if [[ -n "$SLUICE_PID" ]]; then
    SLUICE_IDLE_RSS_AFTER=$(rss_kb "$SLUICE_PID")
fi

scen_index=0
for scen in "${SCENARIOS[@]}"; do
    check_all_listeners
    for ((round = 1; round <= ROUNDS; round++)); do
        # direct first, then nginx/sluice in alternating order (A B, B A, ...),
        # also shifted per scenario so neither proxy always runs first.
        # vkey64: master key and virtual key in the same alternating order.
        # router64: single, simple-shuffle group, latency group, reversed every
        # other round.
        if [[ "$scen" == vkey64 ]]; then
            if (((round + scen_index) % 2 == 1)); then order=(sluice vkey); else order=(vkey sluice); fi
        elif [[ "$scen" == router64 ]]; then
            if (((round + scen_index) % 2 == 1)); then order=(sluice rshuffle rlatency); else order=(rlatency rshuffle sluice); fi
        else
            order=(direct)
            if (((round + scen_index) % 2 == 1)); then order+=(nginx sluice); else order+=(sluice nginx); fi
        fi
        for t in "${order[@]}"; do
            has "$(target_needs "$t")" "$TARGETS_CSV" || continue
            measure "$scen" "$t" "$round"
        done
    done
    for t in $(scenario_targets "$scen"); do pick_best "$scen" "$t"; done
    scen_index=$((scen_index + 1))
done

# vkey64: the virtual key's spend must have reached the store. The flusher
# writes every proxy_batch_write_at (1 s) but may still be draining its spill
# file (that took ~100 s after a quick run), so poll GET /key/info for up to
# VKEY_SPEND_WAIT_MAX seconds; the time it took is reported.
VKEY_SPEND=- VKEY_SPEND_EXPECTED=- VKEY_SPEND_MAX=- VKEY_SPEND_WAIT=-
VKEY_SPEND_OK=""        # yes / no (out of bounds) / fail (not recorded) / "" (not checked)
VKEY_DB_INFO=""
if [[ -n "$VKEY" ]]; then
    per_req=$(fcalc "$MOCK_PROMPT_TOKENS * $PRICE_IN + $MOCK_COMPLETION_TOKENS * $PRICE_OUT" 8)
    # wrk counts finished requests only: each of its runs may leave up to 64
    # requests in flight that sluice still completes and charges.
    VKEY_SPEND_EXPECTED=$(fcalc "$VKEY_REQS * $per_req" 6)
    VKEY_SPEND_MAX=$(fcalc "($VKEY_REQS + 64 * $VKEY_WRK_RUNS) * $per_req" 6)
    if [[ -n "${TARGET_DEAD[sluice]:-}" ]] || ! pid_alive "$SLUICE_PID"; then
        VKEY_SPEND_OK=fail
        VKEY_SPEND_PROBLEM="sluice is not running"
    else
        t0=$(date +%s%N)
        deadline=$((SECONDS + VKEY_SPEND_WAIT_MAX))
        log "waiting for the virtual key's spend to reach the store (up to ${VKEY_SPEND_WAIT_MAX}s)"
        while :; do
            VKEY_SPEND=$(read_vkey_spend) || VKEY_SPEND=-
            if [[ "$VKEY_SPEND" != - ]] && fcmp "$VKEY_SPEND >= $VKEY_SPEND_EXPECTED * 0.999"; then break; fi
            [[ $SECONDS -lt $deadline ]] || break
            sleep 0.25
        done
        VKEY_SPEND_WAIT=$(fcalc "($(date +%s%N) - $t0) / 1e9" 1)
        if [[ "$VKEY_SPEND" == - ]]; then
            VKEY_SPEND_OK=fail
            VKEY_SPEND_PROBLEM="GET /key/info failed: $(head -c 300 "$TMP/key-info.out" 2>/dev/null | tr '\n' ' ')"
        elif ! fcmp "$VKEY_SPEND > 0"; then
            VKEY_SPEND_OK=fail
            VKEY_SPEND_PROBLEM="spend is $VKEY_SPEND after ${VKEY_SPEND_WAIT}s (expected ≈ $VKEY_SPEND_EXPECTED)"
        elif fcmp "$VKEY_SPEND >= $VKEY_SPEND_EXPECTED * 0.999 && $VKEY_SPEND <= $VKEY_SPEND_MAX * 1.001"; then
            VKEY_SPEND_OK=yes
        else
            VKEY_SPEND_OK=no
            warn "vkey64: recorded spend $VKEY_SPEND is outside [$VKEY_SPEND_EXPECTED, $VKEY_SPEND_MAX] ($VKEY_REQS requests × \$$per_req)"
        fi
        [[ "$VKEY_SPEND" == - ]] || VKEY_SPEND=$(fcalc "$VKEY_SPEND" 6)
        log "virtual key spend: $VKEY_SPEND (expected $VKEY_SPEND_EXPECTED–$VKEY_SPEND_MAX for $VKEY_REQS requests; waited ${VKEY_SPEND_WAIT}s)"
    fi
    if [[ "$VKEY_SPEND_OK" == fail ]]; then
        banner "vkey64: virtual key spend not recorded: $VKEY_SPEND_PROBLEM"
        FAILURES+=("vkey64: virtual key spend not recorded: $VKEY_SPEND_PROBLEM")
    fi
fi
if [[ -n "$SLUICE_PID" ]]; then
    db_kb=$(du -sk "$TMP"/sluice.db* 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
    VKEY_DB_INFO="sluice.db* in the temp dir: ${db_kb} kB"
    spill_end=$(stat -c %s "$TMP/sluice-spend-spill.jsonl" 2>/dev/null || echo 0)
    if [[ $SPILL_SEEN -gt 0 || $spill_end -gt 0 ]]; then
        VKEY_DB_INFO+="; spend spill file (rows past the in-memory bound between flushes) non-empty after $SPILL_SEEN of $SPILL_RUNS sluice runs, up to $(fcalc "$SPILL_MAX / 1048576" 1) MiB, $(fcalc "$spill_end / 1048576" 1) MiB at the end"
        warn "sluice spilled spend rows to its spill file: after $SPILL_SEEN of $SPILL_RUNS runs, up to $SPILL_MAX bytes; $spill_end bytes at the end"
    else
        VKEY_DB_INFO+="; spend spill file empty after every run"
    fi
fi

if [[ -n "$SLUICE_PID" ]] && pid_alive "$SLUICE_PID"; then
    SLUICE_HWM=$(hwm_kb "$SLUICE_PID")
fi
if [[ -s "$TMP/rss-samples.txt" ]]; then
    SLUICE_PEAK_RSS=$(awk 'BEGIN { m = 0 } $1 + 0 > m { m = $1 + 0 } END { print m }' "$TMP/rss-samples.txt")
fi
# The full sluice log can be hundreds of MB (one access line per request);
# keep its size, its first lines and every non-access line.
SLUICE_LOG_SUMMARY="discarded (BENCH_SLUICE_LOG=null)"
if [[ -f "$TMP/sluice.log" ]]; then
    log_bytes=$(wc -c <"$TMP/sluice.log")
    log_lines=$(wc -l <"$TMP/sluice.log")
    access_lines=$(grep -c '^[^ ]* access ' "$TMP/sluice.log" || true)
    SLUICE_LOG_SUMMARY="$log_lines lines ($(fcalc "$log_bytes / 1048576" 1) MiB), $access_lines of them access lines"
    {
        echo "# sluice log summary: $SLUICE_LOG_SUMMARY"
        echo "# first 20 lines:"
        head -n 20 "$TMP/sluice.log"
        echo "# every line that is not an access line (at most 500):"
        grep -v '^[^ ]* access ' "$TMP/sluice.log" | head -n 500 || true
    } >"$RESULTS_DIR/raw/sluice.log"
fi
STEAL_TOTAL=$(steal_pct "$STEAL_START" "$(cpu_snapshot)")
LOAD_END=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo -)
ELAPSED=$(($(date +%s) - START_EPOCH))

# ---------------------------------------------------------------- report --

REPORT=$TMP/report.md
TARGET_MISSED=()
TARGET_LINES=()

val() { # METRIC SCENARIO TARGET -> value of the best round or "-"
    local m=$1 scen=$2 target=$3 r
    r=${BEST_ROUND["$scen|$target"]:-}
    if [[ -z "$r" ]]; then echo -; return; fi
    case $m in
        rps) echo "${R_RPS[$scen|$target|$r]}";;
        p50) echo "${R_P50[$scen|$target|$r]}";;
        p99) echo "${R_P99[$scen|$target|$r]}";;
    esac
}

target_check() { # NAME OK(yes/no/n/a) DETAIL
    local mark
    case $2 in yes) mark="✅ met";; no) mark="❌ MISSED"; TARGET_MISSED+=("$1");; *) mark="⚪ n/a";; esac
    TARGET_LINES+=("| $1 | $3 | $mark |")
}

{
    echo "# sluice benchmark results"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); commit: $(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo none)"
    echo "- host: $(nproc) CPUs, $(uname -r); $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'); $("$WRK" -v 2>&1 | head -n 1 | awk '{ print $1, $2 }')"
    echo "- each measurement: ${WARMUP_S}s warm-up + ${MEASURE_S}s wrk --latency; ${ROUNDS} round(s) per target and scenario,"
    echo "  nginx-proxy and sluice (vkey64: master key and virtual key; router64: single, group, latency group) in alternating order. Tables show the **best round** (highest req/s;"
    echo "  for the 1-connection scenario, lowest p50). All rounds are listed under *Raw rounds*."
    echo "- CPU steal over the whole run: ${STEAL_TOTAL}% (high steal makes absolute numbers noisy; compare ratios). Run time ${ELAPSED}s."
    echo "- load average (1 min) before start: ${LOAD_START}, at the end: ${LOAD_END} (the run itself brings it to about 2-3; a higher value before start means other processes share the CPUs)."
    echo "- sluice: $SLUICE_BIN, 2 workers, log (stderr) to ${SLUICE_LOG_DEST:-n/a}, working dir = temp dir; nginx-proxy: 2 workers, upstream keepalive 64, access_log off; mock: nginx, 1 worker."
    if [[ -n "$SLUICE_PID" ]]; then
        echo "- sluice config: bench-model priced (input $PRICE_IN, output $PRICE_OUT per token), proxy_batch_write_at 1; $VKEY_DB_INFO."
    fi
    if [[ -n "$SLUICE2_PID" ]]; then
        echo "- router64: bench-group = $ROUTER_GROUP_SIZE deployments of the same mock, priced like bench-model; sluice #2 (pid $SLUICE2_PID, 2 workers, own temp dir and store) runs the same config with \`routing_strategy: latency-based-routing\`."
    fi
    if [[ -n "$SLUICE_PID" ]]; then echo "- sluice log during the run: $SLUICE_LOG_SUMMARY."; fi
    echo

    for scen in "${SCENARIOS[@]}"; do
        echo "## $(scenario_title "$scen")"
        echo
        echo "| target | req/s | p50 (ms) | p99 (ms) | best round | status |"
        echo "| --- | ---: | ---: | ---: | ---: | --- |"
        for t in $(scenario_targets "$scen"); do
            r=${BEST_ROUND["$scen|$t"]:-}
            statuses=""
            for ((i = 1; i <= ROUNDS; i++)); do
                s=${R_STATUS[$scen|$t|$i]:-not run}
                [[ "$s" == ok ]] || statuses+="r$i ${s}; "
            done
            [[ -n "$statuses" ]] || statuses=ok
            if [[ -n "$r" ]]; then
                printf '| %s | %.0f | %s | %s | %s | %s |\n' "$(target_title "$t" "$scen")" "$(val rps "$scen" "$t")" \
                    "$(us_to_ms "$(val p50 "$scen" "$t")")" "$(us_to_ms "$(val p99 "$scen" "$t")")" "$r" "${statuses%; }"
            else
                printf '| %s | - | - | - | - | %s |\n' "$(target_title "$t" "$scen")" "${statuses%; }"
            fi
        done
        if [[ "$scen" == vkey64 ]]; then
            m=$(val rps vkey64 sluice); v=$(val rps vkey64 vkey)
            if [[ "$m" != - && "$v" != - ]] && fcmp "$m > 0"; then
                echo
                echo "Throughput virtual key / master key: **$(fcalc "$v / $m" 2)×** (p50 $(us_to_ms "$(val p50 vkey64 vkey)") vs $(us_to_ms "$(val p50 vkey64 sluice)") ms, p99 $(us_to_ms "$(val p99 vkey64 vkey)") vs $(us_to_ms "$(val p99 vkey64 sluice)") ms)"
            fi
            echo
            if [[ -z "$VKEY" ]]; then
                echo "Virtual key: not created (${VKEY_PROBLEM:-?})."
            else
                echo "Virtual key spend (\`GET /key/info\`, read ${VKEY_SPEND_WAIT}s after the last run): **\$$VKEY_SPEND**;"
                echo "expected \$$VKEY_SPEND_EXPECTED for the $VKEY_REQS requests wrk and the validation counted (231 + 24 tokens each),"
                echo "at most \$$VKEY_SPEND_MAX with the requests left in flight when each of the $VKEY_WRK_RUNS wrk runs ended."
                case $VKEY_SPEND_OK in
                    yes) echo "Spend check: ✅ within bounds.";;
                    no) echo "Spend check: ⚠️ outside the expected bounds.";;
                    fail) echo "Spend check: ❌ ${VKEY_SPEND_PROBLEM}.";;
                esac
            fi
        elif [[ "$scen" == router64 ]]; then
            one=$(val rps router64 sluice)
            for t in rshuffle rlatency; do
                g=$(val rps router64 "$t")
                if [[ "$one" != - && "$g" != - ]] && fcmp "$one > 0"; then
                    echo
                    echo "Throughput $(target_title "$t") / one deployment: **$(fcalc "$g / $one" 2)×** (p50 $(us_to_ms "$(val p50 router64 "$t")") vs $(us_to_ms "$(val p50 router64 sluice)") ms, p99 $(us_to_ms "$(val p99 router64 "$t")") vs $(us_to_ms "$(val p99 router64 sluice)") ms)"
                fi
            done
            echo
            for t in rshuffle rlatency; do
                echo "- $(target_title "$t"): deployments that served $ROUTER_SPREAD_CALLS calls before the load: ${ROUTER_SPREAD[$t]:-not measured}"
            done
            echo "- the latency group runs in a second sluice process: its ratio compares two processes of the same binary and config (routing_strategy aside)."
        elif has nginx "$TARGETS_CSV" && has sluice "$TARGETS_CSV"; then
            n=$(val rps "$scen" nginx); s=$(val rps "$scen" sluice)
            if [[ "$n" != - && "$s" != - ]] && fcmp "$n > 0"; then
                echo
                echo "Throughput sluice / nginx-proxy: **$(fcalc "$s / $n" 2)×**"
            fi
        fi
        echo
    done

    # ratio_check NAME MIN NUM_LABEL NUM DEN_LABEL DEN: a throughput-ratio target (NUM/DEN ≥ MIN).
    ratio_check() {
        local name=$1 min=$2 nl=$3 num=$4 dl=$5 den=$6 r ok
        if [[ "$num" == - || "$den" == - ]]; then
            target_check "$name" n/a "no successful run"
            return
        fi
        r=$(fcalc "$num / $den" 2)
        if fcmp "$r >= $min"; then ok=yes; else ok=no; fi
        target_check "$name" $ok "$nl $(fcalc "$num" 0) req/s vs $dl $(fcalc "$den" 0) req/s = ${r}×"
    }
    echo "## Summary"
    echo
    # Throughput targets (64-connection scenarios).
    for scen in c64 stream64; do
        has "$scen" "$SCENARIOS_CSV" || continue
        if ! has nginx "$TARGETS_CSV" || ! has sluice "$TARGETS_CSV"; then continue; fi
        ratio_check "throughput $scen ≥ ${TPUT_MIN_RATIO}× nginx" "$TPUT_MIN_RATIO" \
            sluice "$(val rps "$scen" sluice)" nginx "$(val rps "$scen" nginx)"
    done
    # Virtual key vs master key.
    if has vkey64 "$SCENARIOS_CSV"; then
        ratio_check "throughput vkey64: virtual key ≥ ${VKEY_MIN_RATIO}× master key" "$VKEY_MIN_RATIO" \
            "virtual key" "$(val rps vkey64 vkey)" "master key" "$(val rps vkey64 sluice)"
        case $VKEY_SPEND_OK in
            yes|no) target_check "vkey64: spend recorded = requests × price" "$VKEY_SPEND_OK" "\$$VKEY_SPEND (expected \$$VKEY_SPEND_EXPECTED–\$$VKEY_SPEND_MAX)";;
            fail) target_check "vkey64: spend recorded = requests × price" no "${VKEY_SPEND_PROBLEM:-not recorded}";;
            *) target_check "vkey64: spend recorded = requests × price" n/a "not checked (no virtual key)";;
        esac
    fi
    # Routing decisions: a group of 4 vs one deployment.
    if has router64 "$SCENARIOS_CSV"; then
        one=$(val rps router64 sluice)
        for t in rshuffle rlatency; do
            case $t in rshuffle) what="simple-shuffle";; rlatency) what="latency-based-routing";; esac
            name="throughput router64: group of $ROUTER_GROUP_SIZE ($what) ≥ ${ROUTER_MIN_RATIO}× one deployment"
            ratio_check "$name" "$ROUTER_MIN_RATIO" group "$(val rps router64 "$t")" \
                "one deployment" "$one"
        done
    fi
    # Added latency at 1 connection.
    if has c1 "$SCENARIOS_CSV"; then
        d=$(val p50 c1 direct); n=$(val p50 c1 nginx); s=$(val p50 c1 sluice)
        if [[ "$d" != - ]]; then
            echo "Added p50 at 1 connection (p50(target) − p50(direct), direct p50 = $d µs):"
            echo
            [[ "$n" == - ]] || echo "- nginx-proxy: $n − $d = **$((n - d)) µs**"
            [[ "$s" == - ]] || echo "- sluice: $s − $d = **$((s - d)) µs**"
            if [[ "$n" != - && "$s" != - ]]; then
                na=$((n - d)); sa=$((s - d))
                if [[ $na -gt 0 ]]; then
                    ratio=$(fcalc "$sa / $na" 2)
                    echo "- ratio sluice / nginx-proxy: **${ratio}×**"
                    if fcmp "$ratio <= $ADDED_P50_MAX_RATIO"; then ok=yes; else ok=no; fi
                    target_check "added p50 @1 conn ≤ ${ADDED_P50_MAX_RATIO}× nginx" $ok "sluice +${sa} µs vs nginx +${na} µs = ${ratio}×"
                else
                    echo "- ratio: n/a (nginx-proxy added p50 ≤ 0 µs: below the noise floor of this run)"
                    target_check "added p50 @1 conn ≤ ${ADDED_P50_MAX_RATIO}× nginx" n/a "nginx added p50 ${na} µs ≤ 0 (noise); sluice +${sa} µs"
                fi
            fi
            echo
        fi
    fi
    if [[ -n "$SLUICE_PID" ]]; then
        echo "sluice memory (VmRSS from /proc/PID/status):"
        echo
        echo "- idle after start-up: **$(kb_to_mib "$SLUICE_IDLE_RSS") MiB** ($SLUICE_IDLE_RSS kB); after the validation requests: $(kb_to_mib "${SLUICE_IDLE_RSS_AFTER:--}") MiB"
        echo "- peak sampled during the 64-connection runs (every 0.25 s): $(kb_to_mib "$SLUICE_PEAK_RSS") MiB; VmHWM at the end: $(kb_to_mib "$SLUICE_HWM") MiB"
        echo
        if [[ "$SLUICE_IDLE_RSS" == - ]]; then
            target_check "idle RSS ≤ 15 MiB" n/a "not measured"
        else
            if [[ "$SLUICE_IDLE_RSS" -le $IDLE_RSS_LIMIT_KB ]]; then ok=yes; else ok=no; fi
            target_check "idle RSS ≤ 15 MiB" $ok "$(kb_to_mib "$SLUICE_IDLE_RSS") MiB"
        fi
    fi
    if [[ ${#TARGET_LINES[@]} -gt 0 ]]; then
        echo "### Targets"
        echo
        echo "| target | measured | result |"
        echo "| --- | --- | --- |"
        printf '%s\n' "${TARGET_LINES[@]}"
        echo
    fi
    if [[ ${#FAILURES[@]} -gt 0 ]]; then
        echo "### ❌ FAILURES"
        echo
        printf -- '- %s\n' "${FAILURES[@]}"
        echo
    fi

    echo "## Raw rounds"
    echo
    echo "| scenario | target | round | req/s | p50 (ms) | p99 (ms) | requests | non-2xx | socket errors | CPU steal | status |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"
    for scen in "${SCENARIOS[@]}"; do
        for t in $(scenario_targets "$scen"); do
            for ((i = 1; i <= ROUNDS; i++)); do
                k="$scen|$t|$i"
                [[ -n "${R_STATUS[$k]:-}" ]] || continue
                printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s%% | %s |\n' "$scen" "$t" "$i" \
                    "${R_RPS[$k]:--}" "$(us_to_ms "${R_P50[$k]:--}")" "$(us_to_ms "${R_P99[$k]:--}")" \
                    "${R_REQS[$k]:--}" "${R_NON2XX[$k]:--}" "${R_SOCKERR[$k]:--}" "${R_STEAL[$k]:--}" "${R_STATUS[$k]}"
            done
        done
    done
    echo
    echo "wrk outputs: \`bench/results/raw/\`."
} >"$REPORT"

cp "$REPORT" "$RESULTS_DIR/latest.md"
cat "$REPORT"
log "report written to $RESULTS_DIR/latest.md"

if [[ ${#FAILURES[@]} -gt 0 ]]; then
    banner "${#FAILURES[@]} failure(s):" "${FAILURES[@]}"
    exit 1
fi
if [[ ${#TARGET_MISSED[@]} -gt 0 ]]; then
    warn "performance target(s) missed: $(printf '%s; ' "${TARGET_MISSED[@]}")"
    [[ "${BENCH_STRICT:-0}" == 1 ]] && exit 2
fi
exit 0
