#!/usr/bin/env bash
# pixelrelay vs Postfix on this machine; see bench/README.md.
#
#   bench/run.sh           full run (a few minutes)
#   bench/run.sh --quick   tiny counts, a few seconds: proves the harness works
#
# Everything runs on 127.0.0.1 on free ports, with private configs and data
# under one temp dir; every process started here is stopped on exit.
# Prints one table and writes it to bench/out/latest.txt.
set -euo pipefail

QUICK=0
case "${1:-}" in
  --quick) QUICK=1 ;;
  "") ;;
  *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
export PATH=/usr/local/go/bin:$PATH:/usr/sbin:/sbin

if [ "$QUICK" = 1 ]; then
  S=2 M=20 R=3 WRK_SECS=1 FILL=2000 BIG=1000000 BIG_RCPTS=10 QN=20
else
  S=10 M=1000 R=3 WRK_SECS=${BENCH_WRK_SECS:-10} FILL=1000000 BIG=25000000 BIG_RCPTS=10 QN=200
fi
S=${BENCH_SESSIONS:-$S} M=${BENCH_MESSAGES:-$M}
# Parallel upstream connections for pixelrelay: Postfix's default
# destination concurrency to one relayhost is 20.
PX_CONN=${BENCH_PX_CONNECTIONS:-20}
ADMIN_KEY=bench-admin-key-$$

say() { printf "== [%3ds] %s\n" "$SECONDS" "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- install
install_deps() {
  local need=()
  [ -x /usr/sbin/smtp-source ] && [ -x /usr/sbin/smtp-sink ] && [ -x /usr/sbin/postfix ] || need+=(postfix)
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
  [ ${#need[@]} -eq 0 ] && return 0
  say "installing ${need[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
  # Keep the package's own instance from starting (no system MTA on port 25).
  local rc_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod 755 /usr/sbin/policy-rc.d
    rc_added=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  [ "$rc_added" = 1 ] && $sudo rm -f /usr/sbin/policy-rc.d
  # With "No configuration" there is no /etc/postfix/main.cf, so nothing
  # starts; stop a system instance all the same if one runs.
  if [ -f /etc/postfix/main.cf ] && $sudo postfix status >/dev/null 2>&1; then
    $sudo postfix stop >/dev/null 2>&1 || true
  fi
}

# ---------------------------------------------------------------- cleanup
T=""
BG_PIDS=()
PF_DIRS=()
PG_DIR=""
cleanup() {
  local rc=$? p d
  set +e
  for d in "${PF_DIRS[@]}"; do pf_stop "$d"; done
  [ -n "$PG_DIR" ] && pg_stop
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${BG_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  if [ -n "$T" ] && [ -d "$T" ]; then
    if [ "$rc" != 0 ] && [ -n "${BENCH_KEEP_ON_FAILURE:-}" ]; then
      echo "bench: kept $T" >&2
    else
      rm -rf "$T"
    fi
  fi
  [ "$rc" = 0 ] || echo "bench: FAILED (exit $rc)" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# forget PID: it was stopped by hand.
forget() {
  local p keep=()
  for p in "${BG_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  BG_PIDS=("${keep[@]}")
}

# stop_pid PID: TERM, wait up to 10 s, then KILL.
stop_pid() {
  local p=$1
  kill "$p" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  forget "$p"
}

# wait_port PORT SECS [PID]: until something listens on PORT; gives up early
# when PID (the server being started) has exited.
wait_port() {
  local port=$1 secs=$2 pid=${3:-} i
  for i in $(seq $((secs * 20))); do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      echo "bench: the server for 127.0.0.1:$port exited" >&2
      return 1
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: nothing listens on 127.0.0.1:$port after ${secs}s" >&2
  return 1
}

# shellcheck source=bench/postfix.sh
. "$BENCH/postfix.sh"

# ---------------------------------------------------------------- results
declare -A V # V[key]=value
# get KEY FILE: the value of a "key value" line.
get() { awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) exit 1 }' "$2" || die "no $1 in $2: $(tr '\n' ' ' <"$2")"; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }

# ---------------------------------------------------------------- sinks
# start_sink NAME PORT [dump]: smtp-sink counting messages into $T/NAME.out.
start_sink() {
  local name=$1 port=$2 dump=${3:-}
  local args=(-c -u nobody)
  if [ -n "$dump" ]; then
    mkdir -p "$T/dump" && chmod 777 "$T/dump"
    args+=(-D "$T/dump/$name")
  fi
  smtp-sink "${args[@]}" "127.0.0.1:$port" 256 >"$T/$name.out" 2>"$T/$name.err" &
  SINK_PID=$!
  BG_PIDS+=("$SINK_PID")
  wait_port "$port" 5
}

# rss_sampler OUTFILE PID...: samples the summed VmRSS (kB) of the pids
# every 0.2 s and keeps the maximum in OUTFILE; stop it with stop_pid.
rss_sampler() {
  local out=$1
  shift
  (
    max=0
    while :; do
      sum=0
      for p in "$@" $(for q in "$@"; do pgrep -P "$q" 2>/dev/null; done); do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        sum=$((sum + ${v:-0}))
      done
      [ "$sum" -gt "$max" ] && max=$sum && echo "$max" >"$out"
      sleep 0.2
    done
  ) &
  SAMPLER_PID=$!
  BG_PIDS+=("$SAMPLER_PID")
}

# cpu_ticks PID: CPU time (clock ticks) used by PID and its children, live
# (utime+stime) and reaped (cutime+cstime). Samples taken the same way
# before and after a load give the CPU the load cost, whatever else runs on
# the machine.
cpu_ticks() {
  local p line f sum=0
  for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
    line=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    read -r -a f <<<"${line##*) }"
    sum=$((sum + f[11] + f[12] + f[13] + f[14]))
  done
  echo "$sum"
}

# hwm_kb PID...: summed VmHWM (peak RSS) in kB.
hwm_kb() {
  local p sum=0 v
  for p in "$@"; do
    v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

# ---------------------------------------------------------------- loads
# sink_count NAME: messages the sink NAME has counted so far.
sink_count() {
  "$T/pxbench" sinkwait -out "$T/$1.out" -want 0 -timeout 1s | awk '$1 == "count" { print $2 }'
}

# run_loads SIDE SMTP_PORT SINK_NAME COPIES_PER_MSG ROOT_PID
# The relay already runs and delivers to the sink SINK_NAME. Two loads:
#  1. smtp-source -s S -m M -r R -F msg  → accepted and end-to-end msgs/s
#  2. pxbench load (same shape)          → DATA-end→250 latency p50/p99
# End to end = until the sink has counted every copy of every message.
run_loads() {
  local side=$1 port=$2 sink=$3 copies=$4 root=$5 t0 t1 base
  rss_sampler "$T/rss-$side" "$root"
  say "$side: smtp-source -s $S -m $M -r $R (50 KB multipart/alternative)"
  local c0 c1
  c0=$(cpu_ticks "$root")
  base=$(sink_count "$sink")
  t0=$(now)
  smtp-source -s "$S" -m "$M" -r "$R" -F "$T/msg.eml" -M bench.example \
    -f sender@bench.example -t rcpt@example.com "127.0.0.1:$port" >"$T/src-$side.log" 2>&1 ||
    die "$side: smtp-source failed: $(tail -3 "$T/src-$side.log")"
  t1=$(now)
  "$T/pxbench" sinkwait -out "$T/$sink.out" -want $((base + M * copies)) -since "$t0" -timeout 300s >"$T/e2e-$side" ||
    die "$side: not every copy reached the sink"
  stop_pid "$SAMPLER_PID"
  c1=$(cpu_ticks "$root")
  V[cpu_$side]=$(calc "($c1 - $c0) * 1000 / $(getconf CLK_TCK) / $M" 2)
  V[acc_$side]=$(calc "$M / ($t1 - $t0)")
  V[e2e_$side]=$(calc "$M / $(get secs "$T/e2e-$side")")
  V[copies_$side]=$(($(get count "$T/e2e-$side") - base))
  V[rss_$side]=$(calc "$(cat "$T/rss-$side" 2>/dev/null || echo 0) / 1024")

  say "$side: pxbench load -s $S -m $M -r $R (latency)"
  base=$(sink_count "$sink")
  t0=$(now)
  "$T/pxbench" load -addr "127.0.0.1:$port" -s "$S" -m "$M" -r "$R" -msg "$T/msg.eml" >"$T/load-$side" ||
    die "$side: pxbench load failed"
  "$T/pxbench" sinkwait -out "$T/$sink.out" -want $((base + M * copies)) -since "$t0" -timeout 300s >"$T/e2e2-$side" ||
    die "$side: not every copy reached the sink (load)"
  V[lacc_$side]=$(get rate "$T/load-$side")
  V[le2e_$side]=$(calc "$M / $(get secs "$T/e2e2-$side")")
  V[p50_$side]=$(get lat_p50_ms "$T/load-$side")
  V[p99_$side]=$(get lat_p99_ms "$T/load-$side")
}

ports() { "$T/pxbench" ports "$1" | xargs; }

# ---------------------------------------------------------------- postfix
PF_DIR="" PF_PORT=""
# pf_new SINKPORT: a fresh private Postfix instance relaying to the sink.
pf_new() {
  PF_DIR=$T/postfix-$(date +%s%N)
  PF_DIRS+=("$PF_DIR")
  pf_start "$PF_DIR" "$PF_PORT" "$1" || die "postfix did not start"
}
pf_master() { pf_pids "$PF_DIR" | head -1; }

bench_postfix() {
  local sport
  read -r PF_PORT sport < <(ports 2)
  start_sink sink-pf "$sport"
  pf_new "$sport"
  run_loads postfix "$PF_PORT" sink-pf 1 "$(pf_master)"
  # Passthrough is what Postfix always does: the same figures.
  V[pacc_postfix]=${V[acc_postfix]} V[pe2e_postfix]=${V[e2e_postfix]}

  say "postfix: one $((BIG / 1000000)) MB message to $BIG_RCPTS recipients (after reload: fresh daemons)"
  pf_reload "$PF_DIR"
  local base
  base=$(sink_count sink-pf)
  "$T/pxbench" load -addr "127.0.0.1:$PF_PORT" -s 1 -m 1 -r "$BIG_RCPTS" -msg "$T/big.eml" -timeout 120s >/dev/null ||
    die "postfix: big message failed"
  "$T/pxbench" sinkwait -out "$T/sink-pf.out" -want $((base + 1)) -timeout 120s >/dev/null || die "postfix: big message not delivered"
  V[big_postfix]=$(calc "$(hwm_kb $(pf_pids "$PF_DIR")) / 1024")
  pf_stop "$PF_DIR"
  stop_pid "$SINK_PID"
}

# ---------------------------------------------------------------- pixelrelay
PX_DIR="" PX_PID="" PX_SMTP="" PX_HTTP="" PX_POLICY=all PX_NETWORKS=""

# px_start NAME SINKPORT: a fresh data dir and `pixelrelay serve` on it.
px_start() {
  PX_DIR=$T/px-$1
  mkdir -p "$PX_DIR"
  read -r PX_SMTP PX_HTTP < <(ports 2)
  px_serve "$2"
}

# px_serve SINKPORT: write the config for PX_DIR and start serve.
px_serve() {
  cat >"$PX_DIR/config.toml" <<CONF
data_dir = "$PX_DIR/data"

[smtp]
listen = "127.0.0.1:$PX_SMTP"
max_message_size = "50MB"

[upstream]
url = "smtp://127.0.0.1:$1"
tls = "none"
connections = $PX_CONN

[tracking]
base_url = "http://127.0.0.1:$PX_HTTP"
policy = "$PX_POLICY"
ip_hourly_limit = 0
retention = "3650d"
networks_file = "$PX_NETWORKS"
clicks = ${PX_CLICKS:-true}

[http]
listen = "127.0.0.1:$PX_HTTP"

[store]
url = "${PX_STORE:-bolt}"
CONF
  PIXELRELAY_BENCH_NO_FSYNC=${PX_NOFSYNC:-0} PIXELRELAY_ADMIN_KEY=$ADMIN_KEY "$T/pixelrelay" serve --config "$PX_DIR/config.toml" \
    >>"$PX_DIR/serve.log" 2>&1 &
  PX_PID=$!
  BG_PIDS+=("$PX_PID")
  wait_port "$PX_SMTP" 20 "$PX_PID" && wait_port "$PX_HTTP" 10 "$PX_PID" ||
    die "pixelrelay serve did not start: $(tail -5 "$PX_DIR/serve.log")"
}

px_stop() {
  [ -n "$PX_PID" ] && stop_pid "$PX_PID"
  PX_PID=""
}

bench_pixelrelay() {
  local sport base t0 t1
  sport=$(ports 1)
  start_sink sink-px "$sport"
  PX_POLICY=all
  # The pixel only, as these rows always measured; the clicks part
  # measures links (BENCH_CLICKS=true counts clicks here too).
  PX_CLICKS=${BENCH_CLICKS:-false}
  px_start tracked "$sport"
  run_loads pixelrelay "$PX_SMTP" sink-px "$R" "$PX_PID"
  px_stop
  PX_CLICKS=true

  say "pixelrelay passthrough (no spool fsync; tracking policy opt-in, no opt-in header: no split, no rewrite)"
  PX_POLICY=opt-in PX_NOFSYNC=1
  px_start pass "$sport"
  base=$(sink_count sink-px)
  t0=$(now)
  smtp-source -s "$S" -m "$M" -r "$R" -F "$T/msg.eml" -M bench.example \
    -f sender@bench.example -t rcpt@example.com "127.0.0.1:$PX_SMTP" >"$T/src-pass.log" 2>&1 ||
    die "passthrough: smtp-source failed"
  t1=$(now)
  "$T/pxbench" sinkwait -out "$T/sink-px.out" -want $((base + M)) -since "$t0" -timeout 300s >"$T/e2e-pass" ||
    die "passthrough: not every copy reached the sink"
  V[pacc_pixelrelay]=$(calc "$M / ($t1 - $t0)")
  V[pe2e_pixelrelay]=$(calc "$M / $(get secs "$T/e2e-pass")")
  px_stop
  PX_NOFSYNC=0

  say "pixelrelay: one $((BIG / 1000000)) MB message to $BIG_RCPTS recipients (fresh process)"
  PX_POLICY=all
  px_start big "$sport"
  base=$(sink_count sink-px)
  "$T/pxbench" load -addr "127.0.0.1:$PX_SMTP" -s 1 -m 1 -r "$BIG_RCPTS" -msg "$T/big.eml" -timeout 120s >/dev/null ||
    die "pixelrelay: big message failed"
  "$T/pxbench" sinkwait -out "$T/sink-px.out" -want $((base + BIG_RCPTS)) -timeout 120s >/dev/null ||
    die "pixelrelay: big message copies not delivered"
  V[big_pixelrelay]=$(calc "$(hwm_kb "$PX_PID") / 1024")
  px_stop
  stop_pid "$SINK_PID"
}

# ---------------------------------------------------------------- clicks
# smtp_rate SIDE PORT SINK COPIES ROOT: smtp-source with the 30-link
# message against a relay delivering to SINK; sets acc30_, e2e30_, cpu30_.
smtp_rate() {
  local side=$1 port=$2 sink=$3 copies=$4 root=$5 t0 t1 base c0 c1
  say "$side: smtp-source -s $S -m $M -r $R (50 KB, 30 links)"
  c0=$(cpu_ticks "$root")
  base=$(sink_count "$sink")
  t0=$(now)
  smtp-source -s "$S" -m "$M" -r "$R" -F "$T/msg30.eml" -M bench.example \
    -f sender@bench.example -t rcpt@example.com "127.0.0.1:$port" >"$T/src30-$side.log" 2>&1 ||
    die "$side: smtp-source (30 links) failed: $(tail -3 "$T/src30-$side.log")"
  t1=$(now)
  "$T/pxbench" sinkwait -out "$T/$sink.out" -want $((base + M * copies)) -since "$t0" -timeout 300s >"$T/e2e30-$side" ||
    die "$side: not every copy of the 30-link message reached the sink"
  c1=$(cpu_ticks "$root")
  V[cpu30_$side]=$(calc "($c1 - $c0) * 1000 / $(getconf CLK_TCK) / $M" 2)
  V[acc30_$side]=$(calc "$M / ($t1 - $t0)")
  V[e2e30_$side]=$(calc "$M / $(get secs "$T/e2e30-$side")")
}

# wrk_click URL NAME: wrk -t2 -c50 on a click URL, a new User-Agent per
# request; every answer must be the 302.
wrk_click() {
  wrk -t2 -c50 -d"${WRK_SECS}s" --latency -s "$BENCH/click.lua" "$1" >"$T/wrk-$2" 2>&1 ||
    die "wrk failed: $(tail -3 "$T/wrk-$2")"
  if grep -q 'Non-2xx' "$T/wrk-$2"; then die "wrk $2: non-2xx/3xx answers: $(grep Non-2xx "$T/wrk-$2")"; fi
  [ "$(awk '$1 == "not302" { print $2 }' "$T/wrk-$2")" = 0 ] || die "wrk $2: answers other than 302: $(grep not302 "$T/wrk-$2")"
  V[rps_$2]=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$T/wrk-$2")
  V[reqs_$2]=$(awk '/requests in/ { print $1 }' "$T/wrk-$2")
  V[wp99_$2]=$(awk '$1 == "99%" { print $2 }' "$T/wrk-$2")
}

# bench_clicks: the 30-link newsletter through Postfix and through
# pixelrelay (tracking and clicks on), then the click redirect under wrk
# against the static Go server's.
bench_clicks() {
  local sport token sp
  read -r PF_PORT sport < <(ports 2)
  start_sink sink-pf30 "$sport"
  pf_new "$sport"
  smtp_rate postfix "$PF_PORT" sink-pf30 1 "$(pf_master)"
  pf_stop "$PF_DIR"
  stop_pid "$SINK_PID"

  PX_POLICY=all
  sport=$(ports 1)
  start_sink sink-px30 "$sport"
  px_start clicks "$sport"
  smtp_rate pixelrelay "$PX_SMTP" sink-px30 "$R" "$PX_PID"
  px_stop
  stop_pid "$SINK_PID"

  say "clicks: get a genuine click URL from a delivered copy"
  sport=$(ports 1)
  start_sink sink-click "$sport" dump
  px_start clicktok "$sport"
  "$T/pxbench" load -addr "127.0.0.1:$PX_SMTP" -s 1 -m 1 -r 1 -msg "$T/msg30.eml" >/dev/null || die "clicks: send failed"
  "$T/pxbench" sinkwait -out "$T/sink-click.out" -want 1 -timeout 30s >/dev/null || die "clicks: copy not delivered"
  stop_pid "$SINK_PID" # flushes the dump
  token=$("$T/pxbench" token -click -file "$T/dump/sink-click" | awk '{ print $2 }') || die "clicks: no click URL in the delivered copy"
  sleep 11 # past tracking.prefetch_window: the clicks are people's

  say "clicks: wrk -t2 -c50 -d${WRK_SECS}s, pixelrelay /c/TOKEN"
  wrk_click "http://127.0.0.1:$PX_HTTP/c/$token" cpixelrelay
  sleep 0.5 # clicks are committed in batches
  "$T/pxbench" api -url "http://127.0.0.1:$PX_HTTP/api/status" -key "$ADMIN_KEY" \
    -fields database.clicks,database.clicks_human >"$T/status-after-clicks" || die "clicks: /api/status failed"
  V[clicks_stored]=$(get database_clicks "$T/status-after-clicks")
  V[clicks_human]=$(get database_clicks_human "$T/status-after-clicks")
  px_stop

  say "clicks: wrk against bench/cmd/staticpixel /c/"
  sp=$(ports 1)
  "$T/staticpixel" -listen "127.0.0.1:$sp" &
  local spid=$!
  BG_PIDS+=("$spid")
  wait_port "$sp" 5
  wrk_click "http://127.0.0.1:$sp/c/$token" cstatic
  stop_pid "$spid"
}

# ---------------------------------------------------------------- tracker
# wrk_run URL NAME: wrk -t2 -c50 with a new User-Agent per request.
wrk_run() {
  wrk -t2 -c50 -d"${WRK_SECS}s" --latency -s "$BENCH/pixel.lua" "$1" >"$T/wrk-$2" 2>&1 ||
    die "wrk failed: $(tail -3 "$T/wrk-$2")"
  if grep -q 'Non-2xx' "$T/wrk-$2"; then die "wrk $2: non-2xx answers: $(grep Non-2xx "$T/wrk-$2")"; fi
  V[rps_$2]=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$T/wrk-$2")
  V[reqs_$2]=$(awk '/requests in/ { print $1 }' "$T/wrk-$2")
  V[wp99_$2]=$(awk '$1 == "99%" { print $2 }' "$T/wrk-$2")
}

bench_tracker() {
  say "tracker: get a genuine token from a delivered copy"
  PX_POLICY=all
  local sport token sp
  # The worst table a user may load: the built-in one plus a networks
  # file as large as Apple's whole egress list uncompacted.
  PX_NETWORKS=$T/networks.txt
  V[networks]=$("$T/pxbench" networks -o "$PX_NETWORKS" | awk '{ print $2 }') || die "tracker: networks file"
  sport=$(ports 1)
  start_sink sink-token "$sport" dump
  px_start tracker "$sport"
  PX_NETWORKS=""
  "$T/pxbench" load -addr "127.0.0.1:$PX_SMTP" -s 1 -m 1 -r 1 -msg "$T/msg.eml" >/dev/null || die "tracker: send failed"
  "$T/pxbench" sinkwait -out "$T/sink-token.out" -want 1 -timeout 30s >/dev/null || die "tracker: copy not delivered"
  stop_pid "$SINK_PID" # flushes the dump
  token=$("$T/pxbench" token -file "$T/dump/sink-token" | awk '{ print $2 }') || die "tracker: no pixel in the delivered copy"

  say "tracker: wrk -t2 -c50 -d${WRK_SECS}s, pixelrelay /o/TOKEN.gif"
  wrk_run "http://127.0.0.1:$PX_HTTP/o/$token.gif" pixelrelay
  sleep 0.5 # hits are committed in batches
  "$T/pxbench" api -url "http://127.0.0.1:$PX_HTTP/api/status" -key "$ADMIN_KEY" \
    -fields database.opens >"$T/status-after-wrk" || die "tracker: /api/status failed"
  V[opens_stored]=$(get database_opens "$T/status-after-wrk")
  px_stop

  say "tracker: wrk against bench/cmd/staticpixel"
  sp=$(ports 1)
  "$T/staticpixel" -listen "127.0.0.1:$sp" &
  local spid=$!
  BG_PIDS+=("$spid")
  wait_port "$sp" 5
  wrk_run "http://127.0.0.1:$sp/o/$token.gif" static
  stop_pid "$spid"
}

# ---------------------------------------------------------------- postgres
# The pixel on PostgreSQL (store.url): one process, and three processes on
# one database (a wrk each, their sums), beside bbolt measured the same way
# (no networks file, wrk -c51 in all). A private cluster under $T, as
# internal/pgtest starts one (as nobody when run as root).
PG_BIN="" PG_PORT="" PG_RUN=()
pg_start() {
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$PG_BIN/initdb" ] || die "postgres: no /usr/lib/postgresql/*/bin/initdb (apt-get install postgresql)"
  PG_DIR=$T/pg
  mkdir -p "$PG_DIR"
  if [ "$(id -u)" = 0 ]; then
    chown 65534:65534 "$PG_DIR"
    PG_RUN=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
  fi
  (cd / && "${PG_RUN[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8) >"$T/initdb.log" 2>&1 ||
    die "postgres: initdb failed: $(tail -3 "$T/initdb.log")"
  PG_PORT=$(ports 1)
  (cd / && "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 60 \
    -o "-h 127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=200" start) >/dev/null 2>&1 ||
    die "postgres: pg_ctl start failed: $(tail -3 "$PG_DIR/log")"
}
pg_stop() {
  (cd / && "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop) >/dev/null 2>&1
  PG_DIR=""
}
pg_sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 "postgres://postgres@127.0.0.1:$PG_PORT/$1" -c "$2"; }

# wrk_multi NAME URL...: one wrk -t1 -c$((51 / N)) per URL at once, each
# with its own User-Agent prefix (NAME.wI.: no agent repeats an earlier
# run's, which dedup would drop); requests and req/s summed, the worst p99.
wrk_multi() {
  local name=$1 i=0 u pids=() p
  shift
  local c=$((51 / $#))
  for u in "$@"; do
    WRK_PREFIX="$name.w$i." wrk -t1 -c"$c" -d"${WRK_SECS}s" --latency -s "$BENCH/pixel.lua" "$u" >"$T/wrk-$name-$i" 2>&1 &
    pids+=($!)
    i=$((i + 1))
  done
  for p in "${pids[@]}"; do wait "$p" || die "wrk $name failed: $(tail -3 "$T"/wrk-"$name"-*)"; done
  if cat "$T"/wrk-"$name"-* | grep -q 'Non-2xx'; then die "wrk $name: non-2xx answers"; fi
  V[rps_$name]=$(cat "$T"/wrk-"$name"-* | awk '/^Requests\/sec:/ { s += $2 } END { printf "%.0f", s }')
  V[reqs_$name]=$(cat "$T"/wrk-"$name"-* | awk '/requests in/ { s += $1 } END { print s }')
  V[wp99_$name]=$(cat "$T"/wrk-"$name"-* | awk '$1 == "99%" { print $2 }' | sort -h | tail -1)
}

# pg_token NAME: starts serve (PX_DIR=$T/px-NAME) and sets PG_TOKEN to a
# genuine token from a copy it delivered.
PG_TOKEN=""
pg_token() {
  local sport
  sport=$(ports 1)
  start_sink "sink-$1" "$sport" dump
  PX_DIR=$T/px-$1
  mkdir -p "$PX_DIR"
  read -r PX_SMTP PX_HTTP < <(ports 2)
  px_serve "$sport"
  "$T/pxbench" load -addr "127.0.0.1:$PX_SMTP" -s 1 -m 1 -r 1 -msg "$T/msg.eml" >/dev/null || die "postgres: send failed"
  "$T/pxbench" sinkwait -out "$T/sink-$1.out" -want 1 -timeout 30s >/dev/null || die "postgres: copy not delivered"
  stop_pid "$SINK_PID"
  PG_TOKEN=$("$T/pxbench" token -file "$T/dump/sink-$1" | awk '{ print $2 }') || die "postgres: no pixel in the copy"
}

bench_postgres() {
  say "postgres: a private cluster"
  pg_start
  pg_sql postgres "CREATE DATABASE bench" || die "postgres: createdb failed"
  local url="postgres://postgres@127.0.0.1:$PG_PORT/bench" token i first before after pids=() urls=()
  PX_POLICY=all PX_CLICKS=false

  say "postgres: bbolt, the same way (1 process, wrk -c51)"
  PX_STORE=bolt
  pg_token bolt1
  token=$PG_TOKEN
  wrk_multi bolt1 "http://127.0.0.1:$PX_HTTP/o/$token.gif"
  px_stop

  PX_STORE=$url
  pg_token pg1
  token=$PG_TOKEN
  first=$PX_DIR
  pids+=("$PX_PID")
  urls+=("http://127.0.0.1:$PX_HTTP/o/$token.gif")
  say "postgres: 1 process, wrk -c51"
  wrk_multi pg1 "${urls[0]}"
  V[opens_pg1]=$(pg_sql bench "SELECT count(*) FROM opens")
  for i in 2 3; do
    PX_DIR=$T/px-pg$i
    mkdir -p "$PX_DIR/data"
    chmod 700 "$PX_DIR/data"
    cp "$first/data/secrets.json" "$PX_DIR/data/"
    read -r PX_SMTP PX_HTTP < <(ports 2)
    px_serve "$(ports 1)"
    pids+=("$PX_PID")
    urls+=("http://127.0.0.1:$PX_HTTP/o/$token.gif")
  done
  say "postgres: 3 processes on one database, a wrk -c17 each"
  before=$(pg_sql bench "SELECT count(*) FROM opens")
  wrk_multi pg3 "${urls[@]}"
  after=$(pg_sql bench "SELECT count(*) FROM opens")
  V[opens_pg3]=$((after - before))
  V[errs_pg]=$(cat "$T"/px-pg*/serve.log | grep -c 'not stored' || true)
  for i in "${pids[@]}"; do stop_pid "$i"; done
  PX_PID="" PX_STORE=bolt
  pg_stop
}

# ---------------------------------------------------------------- store
bench_store() {
  say "store: fill $FILL opens, query through the admin API, purge + compact"
  PX_DIR=$T/px-store
  mkdir -p "$PX_DIR/data"
  chmod 700 "$PX_DIR/data"
  "$T/pxbench" fill -data "$PX_DIR/data" -n "$FILL" >"$T/fill" || die "store: fill failed"
  V[fill_secs]=$(get secs "$T/fill")
  local id to sport base
  id=$(get sample_id "$T/fill")
  to=$(get sample_to "$T/fill")
  sport=$(ports 1)
  start_sink sink-store "$sport"
  read -r PX_SMTP PX_HTTP < <(ports 2)
  px_serve "$sport"
  base=http://127.0.0.1:$PX_HTTP
  "$T/pxbench" apiq -prefix qid_ -n "$QN" -key "$ADMIN_KEY" -url "$base/api/opens?id=$id&limit=100" >"$T/q" || die "store: /api/opens?id= failed"
  "$T/pxbench" apiq -prefix qto_ -n "$QN" -key "$ADMIN_KEY" -url "$base/api/opens?to=$to&limit=100" >>"$T/q" || die "store: /api/opens?to= failed"
  "$T/pxbench" apiq -prefix qun_ -n "$QN" -key "$ADMIN_KEY" -url "$base/api/messages?unopened=true&limit=100" >>"$T/q" || die "store: /api/messages?unopened= failed"
  "$T/pxbench" uiq -n "$QN" -key "$ADMIN_KEY" -base "$base" \
    -names ui_list,ui_unop,ui_rcpt,ui_text,ui_time,ui_act,ui_queue,ui_stat \
    -paths "/ui/,/ui/?f=unopened&days=3,/ui/?q=user1,/ui/?q=zebra,/ui/m/$id,/ui/activity?range=365d,/ui/queue,/ui/status" \
    >>"$T/q" || die "store: dashboard pages failed"
  for k in qid qto qun ui_list ui_unop ui_rcpt ui_text ui_time ui_act ui_queue ui_stat; do
    V[${k}_p50]=$(get ${k}_p50_ms "$T/q")
    V[${k}_p99]=$(get ${k}_p99_ms "$T/q")
    V[${k}_n]=$(get ${k}_items "$T/q")
  done
  "$T/pxbench" api -method POST -key "$ADMIN_KEY" -url "$base/api/purge?older_than=90d" \
    -fields deleted,size_before,size_after >"$T/purge" || die "store: purge failed"
  V[purge_secs]=$(get wall_secs "$T/purge")
  V[purge_deleted]=$(get deleted "$T/purge")
  V[size_before]=$(calc "$(get size_before "$T/purge") / 1048576")
  V[size_after]=$(calc "$(get size_after "$T/purge") / 1048576")
  px_stop
  stop_pid "$SINK_PID"
}

# ---------------------------------------------------------------- table
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b != "") printf "%.2fx", b / a; else print "-" }'; }

row() { printf "%-52s %14s %14s %8s\n" "$1" "$2" "$3" "${4-$(ratio "$2" "$3")}"; }

table() {
  local cpu
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  echo "pixelrelay benchmark $( [ "$QUICK" = 1 ] && echo "(QUICK: harness check only, not a measurement)")"
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: ${cpu:-unknown CPU}, $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GB", $2/1048576 }' /proc/meminfo) RAM"
  echo "go:      $(go version | awk '{ print $3 }'), postfix $(postconf -h mail_version 2>/dev/null || postconf -d -h mail_version)"
  echo "load:    smtp-source -s $S -m $M -r $R -F <$(($(wc -c <"$T/msg.eml") / 1000)) KB multipart/alternative HTML, a link per item>; sink: smtp-sink"
  echo "         the 30-link rows: the same size with 30 links"
  echo "loadavg: $LOAD_START at the start, $(cut -d" " -f1-3 /proc/loadavg) at the end (other work on the machine skews every rate)"
  echo "relay:   durability on (both fsync before 250), pixelrelay tracking on (clicks: the 30-link rows and the"
  echo "         click redirect; the others $( [ "${BENCH_CLICKS:-false}" = true ] && echo "with clicks too" || echo "pixel only, BENCH_CLICKS=true adds clicks")), upstream connections $PX_CONN"
  echo
  row "figure" "postfix" "pixelrelay" "ratio"
  row "accepted msgs/s (smtp-source)" "${V[acc_postfix]:-}" "${V[acc_pixelrelay]:-}"
  row "end-to-end msgs/s (every copy at the sink)" "${V[e2e_postfix]:-}" "${V[e2e_pixelrelay]:-}"
  row "copies at the sink" "${V[copies_postfix]:-}" "${V[copies_pixelrelay]:-}" "-"
  row "accepted msgs/s (pxbench load, same shape)" "${V[lacc_postfix]:-}" "${V[lacc_pixelrelay]:-}"
  row "end-to-end msgs/s (pxbench load)" "${V[le2e_postfix]:-}" "${V[le2e_pixelrelay]:-}"
  row "end of DATA -> 250, p50 ms" "${V[p50_postfix]:-}" "${V[p50_pixelrelay]:-}"
  row "end of DATA -> 250, p99 ms" "${V[p99_postfix]:-}" "${V[p99_pixelrelay]:-}"
  row "passthrough accepted msgs/s (smtp-source)" "${V[pacc_postfix]:-}" "${V[pacc_pixelrelay]:-}"
  row "passthrough end-to-end msgs/s" "${V[pe2e_postfix]:-}" "${V[pe2e_pixelrelay]:-}"
  row "CPU ms per message (accept + deliver, smtp-source)" "${V[cpu_postfix]:-}" "${V[cpu_pixelrelay]:-}"
  row "RSS under the load, MB (postfix: all processes)" "${V[rss_postfix]:-}" "${V[rss_pixelrelay]:-}"
  row "peak RSS, one $((BIG / 1000000)) MB msg to $BIG_RCPTS rcpts, MB" "${V[big_postfix]:-}" "${V[big_pixelrelay]:-}"
  row "30 links, clicks on: accepted msgs/s (smtp-source)" "${V[acc30_postfix]:-}" "${V[acc30_pixelrelay]:-}"
  row "30 links, clicks on: end-to-end msgs/s" "${V[e2e30_postfix]:-}" "${V[e2e30_pixelrelay]:-}"
  row "30 links, clicks on: CPU ms per message" "${V[cpu30_postfix]:-}" "${V[cpu30_pixelrelay]:-}"
  echo
  row "tracker (wrk -t2 -c50 -d${WRK_SECS}s, +${V[networks]:-?} networks)" "static Go" "pixelrelay" "ratio"
  row "pixel req/s" "${V[rps_static]:-}" "${V[rps_pixelrelay]:-}"
  row "pixel p99 latency" "${V[wp99_static]:-}" "${V[wp99_pixelrelay]:-}" "-"
  row "requests answered / opens stored" "-" "${V[reqs_pixelrelay]:-} / ${V[opens_stored]:-}" "-"
  row "click redirect (302) req/s" "${V[rps_cstatic]:-}" "${V[rps_cpixelrelay]:-}"
  row "click p99 latency" "${V[wp99_cstatic]:-}" "${V[wp99_cpixelrelay]:-}" "-"
  row "requests answered / clicks stored (human)" "-" "${V[reqs_cpixelrelay]:-} / ${V[clicks_stored]:-} (${V[clicks_human]:-})" "-"
  echo
  row "pixel on PostgreSQL (wrk -c51 in all, answered after commit)" "bbolt" "postgres" "ratio"
  row "pixel req/s, 1 process" "${V[rps_bolt1]:-}" "${V[rps_pg1]:-}"
  row "pixel req/s, 3 processes on one database" "${V[rps_bolt1]:-}" "${V[rps_pg3]:-}"
  row "pixel p99 latency, 1 / 3 processes" "${V[wp99_bolt1]:-}" "${V[wp99_pg1]:-} / ${V[wp99_pg3]:-}" "-"
  row "requests answered / opens stored, 1 process" "-" "${V[reqs_pg1]:-} / ${V[opens_pg1]:-}" "-"
  row "requests answered / opens stored, 3 processes" "-" "${V[reqs_pg3]:-} / ${V[opens_pg3]:-}" "-"
  row "\"hits not stored\" lines in the serve logs" "-" "${V[errs_pg]:-}" "-"
  echo
  row "store ($FILL opens)" "" "pixelrelay" ""
  row "fill (direct store writes), s" "" "${V[fill_secs]:-}" ""
  row "/api/opens?id= p50 / p99 ms" "" "${V[qid_p50]:-} / ${V[qid_p99]:-}" ""
  row "/api/opens?to= p50 / p99 ms" "" "${V[qto_p50]:-} / ${V[qto_p99]:-}" ""
  row "/api/messages?unopened=true p50 / p99 ms" "" "${V[qun_p50]:-} / ${V[qun_p99]:-}" ""
  row "dashboard: sent copies, newest p50 / p99 ms" "" "${V[ui_list_p50]:-} / ${V[ui_list_p99]:-}" ""
  row "dashboard: no human open in 3 days p50 / p99 ms" "" "${V[ui_unop_p50]:-} / ${V[ui_unop_p99]:-}" ""
  row "dashboard: recipient prefix (111 rcpts) p50 / p99 ms" "" "${V[ui_rcpt_p50]:-} / ${V[ui_rcpt_p99]:-}" ""
  row "dashboard: text search, no match p50 / p99 ms" "" "${V[ui_text_p50]:-} / ${V[ui_text_p99]:-}" ""
  row "dashboard: a copy's timeline p50 / p99 ms" "" "${V[ui_time_p50]:-} / ${V[ui_time_p99]:-}" ""
  row "dashboard: opens over a year p50 / p99 ms" "" "${V[ui_act_p50]:-} / ${V[ui_act_p99]:-}" ""
  row "dashboard: queue p50 / p99 ms" "" "${V[ui_queue_p50]:-} / ${V[ui_queue_p99]:-}" ""
  row "dashboard: status p50 / p99 ms" "" "${V[ui_stat_p50]:-} / ${V[ui_stat_p99]:-}" ""
  row "purge (older_than=90d) + compact, s" "" "${V[purge_secs]:-}" ""
  row "opens deleted" "" "${V[purge_deleted]:-}" ""
  row "database file before / after, MB" "" "${V[size_before]:-} / ${V[size_after]:-}" ""
  echo
  echo "ratio = pixelrelay / postfix (tracker: / static Go server); for latency and memory lower is better"
  goals
}


# goal NAME OK: one line of the goals summary.
goal() { printf '  %-58s %s\n' "$1" "$2"; }
# check EXPR KEY...: "met" or "NOT met" for an awk condition over numbers;
# "not measured" when one of the KEYs has no value.
check() {
  local expr=$1 k
  shift
  for k in "$@"; do
    [ "$(num "$k")" = -1 ] && { echo "not measured"; return; }
  done
  awk "BEGIN { if ($expr) print \"met\"; else print \"NOT met\" }"
}
num() { local v=${V[$1]:-}; [[ $v =~ ^[0-9.]+$ ]] && echo "$v" || echo "-1"; }

goals() {
  echo
  if [ "$QUICK" = 1 ]; then
    echo "goals: not judged in quick mode"
    return
  fi
  echo "goals (from the performance issue):"
  goal "accepted msgs/s >= 2x Postfix" \
    "$(check "$(num acc_pixelrelay) >= 2 * $(num acc_postfix)" acc_pixelrelay acc_postfix)"
  goal "end-to-end msgs/s >= 1.5x Postfix" \
    "$(check "$(num e2e_pixelrelay) >= 1.5 * $(num e2e_postfix)" e2e_pixelrelay e2e_postfix)"
  goal "peak RSS, 25 MB to 10 rcpts < 100 MB" \
    "$(check "$(num big_pixelrelay) < 100" big_pixelrelay)"
  goal "pixel req/s >= 0.6x static Go server (full network table)" \
    "$(check "$(num rps_pixelrelay) >= 0.6 * $(num rps_static)" rps_pixelrelay rps_static)"
  goal "every pixel request stored as an open" \
    "$(check "$(num opens_stored) >= $(num reqs_pixelrelay)" opens_stored reqs_pixelrelay)"
  goal "PostgreSQL: every answered pixel stored (1 and 3 processes)" \
    "$(check "$(num opens_pg1) >= $(num reqs_pg1) && $(num opens_pg3) >= $(num reqs_pg3)" opens_pg1 reqs_pg1 opens_pg3 reqs_pg3)"
  goal "accepted msgs/s, 30 links and clicks on, >= 1.8x Postfix" \
    "$(check "$(num acc30_pixelrelay) >= 1.8 * $(num acc30_postfix)" acc30_pixelrelay acc30_postfix)"
  goal "click redirect req/s >= 0.5x static Go server" \
    "$(check "$(num rps_cpixelrelay) >= 0.5 * $(num rps_cstatic)" rps_cpixelrelay rps_cstatic)"
  goal "every click request stored as a click" \
    "$(check "$(num clicks_stored) >= $(num reqs_cpixelrelay)" clicks_stored reqs_cpixelrelay)"
  goal "query p99 < 20 ms (opens?id, opens?to, messages?unopened)" \
    "$(check "$(num qid_p99) < 20 && $(num qto_p99) < 20 && $(num qun_p99) < 20" qid_p99 qto_p99 qun_p99)"
  goal "every dashboard page p99 < 50 ms at $FILL opens" \
    "$(check "$(num ui_list_p99) < 50 && $(num ui_unop_p99) < 50 && $(num ui_rcpt_p99) < 50 && $(num ui_text_p99) < 50 && $(num ui_time_p99) < 50 && $(num ui_act_p99) < 50 && $(num ui_queue_p99) < 50 && $(num ui_stat_p99) < 50" ui_list_p99 ui_unop_p99 ui_rcpt_p99 ui_text_p99 ui_time_p99 ui_act_p99 ui_queue_p99 ui_stat_p99)"
}

# ---------------------------------------------------------------- main
main() {
  LOAD_START=$(cut -d" " -f1-3 /proc/loadavg)
  install_deps
  T=$(mktemp -d /tmp/pxbench.XXXXXX)
  chmod 755 "$T" # the postfix user must reach its queue under it
  say "building"
  local parts=${BENCH_PARTS:-postfix pixelrelay clicks tracker postgres store}
  (cd "$ROOT" && go build -o "$T/pxbench" ./bench/cmd/pxbench &&
    go build -o "$T/staticpixel" ./bench/cmd/staticpixel) || die "build of the bench tools failed"
  if [ "$parts" != postfix ]; then
    (cd "$ROOT" && go build -o "$T/pixelrelay" .) || die "go build of pixelrelay failed"
  fi
  "$T/pxbench" genmsg -size 45000 -o "$T/msg.eml"
  "$T/pxbench" genmsg -size 45000 -links 30 -o "$T/msg30.eml"
  "$T/pxbench" genmsg -size 45000 -attach $((BIG * 3 / 4)) -o "$T/big.eml"

  local part
  for part in $parts; do
    "bench_$part"
  done

  mkdir -p "$BENCH/out"
  table | tee "$BENCH/out/latest.txt"
}

main
