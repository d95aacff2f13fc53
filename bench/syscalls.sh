#!/usr/bin/env bash
# Syscalls per ping-pong round trip: the C echo pair against our server and clients.
#
#   bench/syscalls.sh [ROUND_TRIPS]        (default 2000; needs strace, cc, deno)
#
# The evidence for what limits the ratios of `deno task bench`. For each server, strace
# attaches (-f -p: every thread) once the server is parked waiting for its client, counts
# (-c) while a client does ROUND_TRIPS ping-pongs of 100-byte lines, and detaches; start-up
# and shut-down are not counted. For each client, strace runs it twice, for ROUND_TRIPS + 1
# and for 1 round trip, and the difference is divided by ROUND_TRIPS (start-up cancels).
# Every figure is calls per round trip, the server's read + write of one echo (the C
# server's floor is 1 read + 1 write); futex, epoll_wait, fcntl and close show thread hops
# (an awaited read or write goes to the runtime's blocking pool and back).
#
# Columns:
#   C server        bench/c_echo.c server, driven by the C client
#   ours            server.ts as users run it (the card's permissions, cwd elsewhere),
#                   driven by the C client
#   ours, session   the same server, driven by a connect() session (conn session below)
#   C client        c_echo client pingpong, against the C server
#   our lib client  bench/load.ts pingpong (FifoFile.readSync/writeAllSync), against C
#   conn shared     bench/load.ts conn (connect(), mode shared), against ours
#   conn session    bench/load.ts session (connect(), the default), against ours
#
# Everything lives in a private directory under /tmp, removed (with every process it
# started, each run under a deadline) on the way out.
set -euo pipefail

N=${1:-2000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The binary itself, not a wrapper: strace must count Deno's calls, not npx's. Without a
# deno on PATH, the pinned one npx fetches (only Node.js and npm are assumed).
if [ -z "${DENO:-}" ]; then
	DENO=$(command -v deno || npx -y deno@2.9.6 eval -q 'console.log(Deno.execPath())')
fi
DEADLINE=120

if ! command -v strace >/dev/null; then
	echo "strace is missing: apt-get install -y strace" >&2
	exit 1
fi
if ! command -v cc >/dev/null; then
	echo "cc is missing: the C baseline cannot be built" >&2
	exit 1
fi

WORK=$(mktemp -d /tmp/fifo-syscalls-XXXXXX)
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cc -O2 -pthread -o "$WORK/c_echo" "$ROOT/bench/c_echo.c"
C="$WORK/c_echo"

# counts FILE -> "syscall calls" lines from a strace -c summary.
counts() {
	awk '/^-----/ { table = !table; next }
		table && NF >= 5 && $NF != "total" { print $NF, $4 }' "$1"
}

# wait_parked PID: until a thread of PID waits in open() for the client (or 10 s pass).
wait_parked() {
	for _ in $(seq 1 1000); do
		if cat /proc/"$1"/task/*/wchan 2>/dev/null | tr '\0' '\n' | grep -q wait_for_partner; then
			return 0
		fi
		sleep 0.01
	done
}

# start_ours DIR: our server in the background, as users run it, serving DIR/s.*.
start_ours() {
	(cd "$1" && exec timeout -s KILL "$DEADLINE" "$DENO" run -q --allow-read=/tmp \
		--allow-write=/tmp --allow-run=mkfifo "$ROOT/server.ts" --dir "$1" --name s --quiet >/dev/null) &
}

# server_counts NAME c|ours [CLIENT...]: strace the server while a client (the C one by
# default) runs N round trips.
server_counts() {
	local name=$1 kind=$2 dir="$WORK/$1" pid strace_pid in out
	shift 2
	local client=("$@")
	[ ${#client[@]} -eq 0 ] && client=("$C" client pingpong)
	mkdir -m 700 "$dir"
	if [ "$kind" = c ]; then
		in="$dir/in" out="$dir/out"
		mkfifo -m 600 "$in" "$out"
		timeout -s KILL "$DEADLINE" "$C" server "$in" "$out" &
	else
		in="$dir/s.in" out="$dir/s.out"
		start_ours "$dir"
	fi
	PIDS+=($!)
	# `timeout` forks the server: find its child.
	for _ in $(seq 1 500); do
		pid=$(pgrep -P "$!" | head -1 || true)
		[ -n "$pid" ] && [ -p "$in" ] && [ -p "$out" ] && break
		sleep 0.01
	done
	PIDS+=("$pid")
	wait_parked "$pid"
	timeout -s KILL "$DEADLINE" strace -f -c -o "$WORK/$name.txt" -p "$pid" 2>/dev/null &
	strace_pid=$!
	PIDS+=("$strace_pid")
	sleep 0.5 # strace reports nothing when it attaches; give it time to reach every thread
	timeout -s KILL "$DEADLINE" "${client[@]}" "$in" "$out" "$N" 100 >/dev/null
	sleep 0.1
	kill -INT "$strace_pid" 2>/dev/null || true
	wait "$strace_pid" 2>/dev/null || true
	kill -TERM "$pid" 2>/dev/null || true
	wait 2>/dev/null || true
	counts "$WORK/$name.txt" >"$WORK/$name.counts"
}

# client_counts NAME SERVER(c|ours) CMD...: strace the client at N+1 and 1 round trips.
client_counts() {
	local name=$1 kind=$2
	shift 2
	local run
	for run in big small; do
		local count=$((N + 1)) dir="$WORK/$name-$run" pid in out
		[ "$run" = small ] && count=1
		mkdir -m 700 "$dir"
		if [ "$kind" = c ]; then
			in="$dir/in" out="$dir/out"
			mkfifo -m 600 "$in" "$out"
			timeout -s KILL "$DEADLINE" "$C" server "$in" "$out" &
		else
			in="$dir/s.in" out="$dir/s.out"
			start_ours "$dir"
		fi
		pid=$!
		PIDS+=("$pid")
		for _ in $(seq 1 500); do [ -p "$in" ] && [ -p "$out" ] && break; sleep 0.01; done
		sleep 0.2
		timeout -s KILL "$DEADLINE" strace -f -c -o "$WORK/$name-$run.txt" \
			"$@" "$in" "$out" "$count" 100 >/dev/null
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		counts "$WORK/$name-$run.txt" >"$WORK/$name-$run.counts"
	done
	# big - small, as "syscall calls" lines
	awk 'NR == FNR { small[$1] = $2; next } { print $1, $2 - small[$1] }' \
		"$WORK/$name-small.counts" "$WORK/$name-big.counts" >"$WORK/$name.counts"
}

echo "counting syscalls over $N round trips of 100 bytes..." >&2
DENO_CLIENT=("$DENO" run -q --allow-read=/tmp --allow-write=/tmp --allow-run=mkfifo
	"$ROOT/bench/load.ts")
server_counts c-server c
server_counts ours ours
server_counts ours-session ours "${DENO_CLIENT[@]}" session
client_counts c-client c "$C" client pingpong
client_counts lib-client c "${DENO_CLIENT[@]}" pingpong
client_counts conn-shared ours "${DENO_CLIENT[@]}" conn
client_counts conn-session ours "${DENO_CLIENT[@]}" session

COLUMNS=(c-server ours ours-session c-client lib-client conn-shared conn-session)
HEADERS=("C server" "ours" "ours, session" "C client" "our lib client" "conn shared"
	"conn session")
awk -v n="$N" -v cols="${COLUMNS[*]}" -v heads="$(IFS='|'; echo "${HEADERS[*]}")" -v work="$WORK" '
BEGIN {
	k = split(cols, col, " ")
	split(heads, head, "|")
	for (i = 1; i <= k; i++) {
		file = work "/" col[i] ".counts"
		while ((getline line < file) > 0) {
			split(line, f, " ")
			calls[f[1], i] = f[2]
			total[i] += f[2]
			names[f[1]] = 1
			sum[f[1]] += f[2] > 0 ? f[2] : 0
		}
	}
	printf "%-16s", "per round trip"
	for (i = 1; i <= k; i++) printf " %15s", head[i]
	printf "\n"
	# rows: syscalls that occur at least 0.05 times per round trip somewhere, busiest first
	m = 0
	for (s in names) if (sum[s] / n >= 0.05) order[++m] = s
	for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++)
		if (sum[order[b]] > sum[order[a]]) { t = order[a]; order[a] = order[b]; order[b] = t }
	for (a = 1; a <= m; a++) {
		printf "%-16s", order[a]
		for (i = 1; i <= k; i++) printf " %15.2f", calls[order[a], i] / n
		printf "\n"
	}
	printf "%-16s", "total"
	for (i = 1; i <= k; i++) printf " %15.2f", total[i] / n
	printf "\n"
}'
