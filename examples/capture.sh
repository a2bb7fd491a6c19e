#!/usr/bin/env bash
# capture.sh: makes the example captures of tgpt, examples/data/LABEL.pcap, from
# real programs talking to each other across network namespaces.
#
# Four namespaces of our own form a small LAN: a switch (a bridge) with three
# hosts on veth pairs: srv (10.77.0.1, fd77::1) runs the servers, c1 (.11, ::11)
# and c2 (.12, ::12) the clients; c1 also answers as .110-.119 and c2 as
# .120-.129 (fd77::110.., fd77::120..), the sources and targets of ping.
# tcpdump listens on the switch port of srv, so every capture holds whole
# Ethernet frames as they crossed the wire, one application (label) per file.
# Nothing is routed outside the namespaces.
# Servers run by hand from config files in a temporary directory, never
# through systemd, and the EXIT trap stops them and deletes the namespaces.
#
# Deterministic where it can be: the request lists, sizes, pauses and content
# come from fixed seeds (bash's RANDOM, seeded per label); keys, ports chosen
# by the kernel, clocks and cipher nonces are not.
#
# Usage: sudo examples/capture.sh [-kr] [-o DIR] [LABEL...]   (labels: all)
# Packages: make deps-capture. Takes about six minutes.
set -euo pipefail

PROG=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$HERE/data
KEEP=0
REINDEX=0
SEED=2403
LABELS_ALL=(http tls dns ssh icmp ntp redis mqtt bulk)

usage() {
	cat <<EOF
usage: $PROG [-hkr] [-o dir] [label ...]
Captures real traffic of each label (default all: ${LABELS_ALL[*]})
into dir/LABEL.pcap (default $OUT), then rewrites dir/README and the
label list (examples/labels.tsv, or dir/labels.tsv with -o). Must run as
root: it makes network namespaces.
  -k      keep the temporary directory (configs, logs) for inspection
  -o dir  where the captures go
  -r      capture nothing: only rewrite the README and the label list from
          the captures there (e.g. for the flow counts, once bin/ is built)
Packages: make deps-capture
EOF
}

die() { echo "$PROG: $*" >&2; exit 1; }
say() { echo "$PROG: $*" >&2; }

while getopts hko:r opt; do
	case $opt in
	h) usage; exit 0 ;;
	k) KEEP=1 ;;
	r) REINDEX=1 ;;
	o) OUT=$OPTARG ;;
	*) usage >&2; exit 64 ;;
	esac
done
shift $((OPTIND - 1))
LABELS=("$@")
[ ${#LABELS[@]} -gt 0 ] || LABELS=("${LABELS_ALL[@]}")
for l in "${LABELS[@]}"; do
	[[ " ${LABELS_ALL[*]} " == *" $l "* ]] || { usage >&2; echo "$PROG: unknown label '$l'" >&2; exit 64; }
done

if [ "$(id -u)" != 0 ] && [ "$REINDEX" = 0 ]; then
	echo "$PROG: needs root to create network namespaces; run: sudo $0${*:+ $*}" >&2
	exit 77
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# ---------------------------------------------------------------- programs
# program:package pairs, per label, so a missing one names what to install.
NEED_common="ip:iproute2 tcpdump:tcpdump ethtool:ethtool ss:iproute2 timeout:coreutils openssl:openssl awk:mawk"
NEED_http="nginx:nginx-light curl:curl"
NEED_tls="nginx:nginx-light curl:curl"
NEED_dns="dnsmasq:dnsmasq-base dig:bind9-dnsutils"
NEED_ssh="/usr/sbin/sshd:openssh-server ssh:openssh-client scp:openssh-client sftp:openssh-client ssh-keygen:openssh-client"
NEED_icmp="ping:iputils-ping"
NEED_ntp="chronyd:chrony ntpdig:ntpsec-ntpdig"
NEED_redis="redis-server:redis-server redis-cli:redis-tools redis-benchmark:redis-tools"
NEED_mqtt="mosquitto:mosquitto mosquitto_pub:mosquitto-clients mosquitto_sub:mosquitto-clients"
NEED_bulk="iperf3:iperf3"

check_programs() {
	local missing=() pkgs=() l pair prog pkg
	for l in common "${LABELS[@]}"; do
		local var=NEED_$l
		for pair in ${!var}; do
			prog=${pair%%:*} pkg=${pair#*:}
			command -v "$prog" >/dev/null 2>&1 && continue
			missing+=("$prog")
			[[ " ${pkgs[*]-} " == *" $pkg "* ]] || pkgs+=("$pkg")
		done
	done
	[ ${#missing[@]} = 0 ] && return 0
	echo "$PROG: missing programs: ${missing[*]}" >&2
	echo "$PROG: install them with: make deps-capture (or apt-get install ${pkgs[*]})" >&2
	exit 69
}
export PATH=$PATH:/usr/sbin:/sbin
check_programs

# ---------------------------------------------------------------- cleanup
T="" # the work directory: configs, keys, logs, captures in the making
NS_SW=tgpt-sw-$$ NS_SRV=tgpt-srv-$$ NS_C1=tgpt-c1-$$ NS_C2=tgpt-c2-$$
NAMESPACES=()
ALL_PIDS=()
LABEL_PIDS=()
MADE_RUN_SSHD=0

# Kills every process left in one of our namespaces (they are ours: the
# namespaces were empty when we made them).
sweep_ns() {
	local ns pids
	for ns in "${NAMESPACES[@]}"; do
		pids=$(ip netns pids "$ns" 2>/dev/null || true)
		[ -z "$pids" ] || kill -TERM $pids 2>/dev/null || true
	done
	sleep 0.3
	for ns in "${NAMESPACES[@]}"; do
		pids=$(ip netns pids "$ns" 2>/dev/null || true)
		[ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
	done
	return 0
}

cleanup() {
	local status=$? pid ns
	set +e
	trap - EXIT INT TERM HUP
	for pid in "${ALL_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	sweep_ns
	for pid in "${ALL_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
	for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null; done
	[ "$MADE_RUN_SSHD" = 1 ] && rmdir /run/sshd 2>/dev/null
	if [ -z "$T" ]; then
		:
	elif [ "$KEEP" = 1 ] || [ "$status" != 0 ]; then
		say "configs and logs kept in $T"
	else
		rm -rf "$T"
	fi
	[ "$status" != 0 ] && [ ${#NAMESPACES[@]} -gt 0 ] && say "failed (exit $status); namespaces and processes cleaned up"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# ---------------------------------------------------------------- helpers
spawn() { # LOG NS CMD...: runs CMD inside namespace NS in the background
	local log=$1 ns=$2
	shift 2
	ip netns exec "$ns" "$@" >>"$T/log/$log.log" 2>&1 &
	LAST_PID=$!
	ALL_PIDS+=("$LAST_PID")
}
server() { spawn "$@"; LABEL_PIDS+=("$LAST_PID"); }

stop_pid() { # PID: TERM, then KILL when it lingers
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
	for ((i = 0; i < 50; i++)); do
		[ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# wait_all PID...: waits for these children; fails when one of them failed.
wait_all() {
	local pid status=0
	for pid; do wait "$pid" || status=$?; done
	return $status
}

# on HOST CMD...: runs a client in c1, c2 or srv, logged, bounded in time.
on() {
	local host=$1
	shift
	timeout 120 ip netns exec "$(ns_of "$host")" "$@" >>"$CLOG" 2>&1
}
# on_bg HOST CMD...: the same in the background; LAST_PID is timeout's, which
# hands a TERM on to the client.
on_bg() {
	local host=$1
	shift
	timeout 300 ip netns exec "$(ns_of "$host")" "$@" >>"$CLOG" 2>&1 &
	LAST_PID=$!
	ALL_PIDS+=("$LAST_PID")
}
ns_of() { case $1 in srv) echo "$NS_SRV" ;; c1) echo "$NS_C1" ;; c2) echo "$NS_C2" ;; esac; }

# wait_listen PROTO PORT: until a server in srv listens (checked with ss,
# so the check itself sends nothing on the wire).
wait_listen() {
	local proto=$1 port=$2 i
	for ((i = 0; i < 100; i++)); do
		[ -n "$(ip netns exec "$NS_SRV" ss -Hln"${proto:0:1}" "sport = :$port")" ] && return 0
		sleep 0.1
	done
	die "nothing listens on $proto port $port in srv (logs: $T/log)"
}

# pause MIN MAX: sleeps a seeded random time, in milliseconds.
pause() {
	local ms=$(($1 + RANDOM % ($2 - $1 + 1)))
	sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
}
# pick VAR WORD...: sets VAR to one of the words (seeded). No $(...): a
# subshell reseeds RANDOM and would break the determinism.
pick() {
	local var=$1
	shift
	local words=("$@")
	printf -v "$var" %s "${words[RANDOM % ${#words[@]}]}"
}
# nth VAR MAX: sets VAR to a number in 1..MAX, two digits (seeded).
nth() { printf -v "$1" %02d $((1 + RANDOM % $2)); }
# chance PERCENT: true that often (seeded).
chance() { [ $((RANDOM % 100)) -lt "$1" ]; }

# Deterministic content: pseudo-random bytes (AES-CTR of zeros under a key
# made from the seed) and English-like text (mawk's seeded rand).
gen_bytes() { # SEED SIZE
	head -c "$2" /dev/zero | openssl enc -aes-128-ctr -nosalt \
		-K "$(printf '%032x' "$1")" -iv 000102030405060708090a0b0c0d0e0f
}
VOCABULARY="the of and to in is that for it as was with be by on not this are or from at
which but have an they you were there would their we been has when who will more no if out so
what up its about into than them can only other new some could time these two may then do first
any my now such like our over even most made after also did many before must through back years
where much your way well down should because each just those people how too little state good
very make world still own see work long get here between both life being under never day same
another know while last might great old year off come since against go came right used take
three network packet flow traffic server client model token capture"
gen_text() { # SEED SIZE [TITLE]: an HTML page of SIZE bytes
	awk -v seed="$1" -v size="$2" -v title="${3:-}" -v vocabulary="${VOCABULARY//$'\n'/ }" 'BEGIN {
		n = split(vocabulary, w, " ")
		srand(seed)
		head = "<!DOCTYPE html>\n<html><head><title>" title "</title></head>\n<body>\n"
		tail = "</body></html>\n"
		out = head; body = size - length(head) - length(tail)
		while (body > 0) {
			p = "<p>"
			k = 20 + int(rand() * 60)
			for (i = 0; i < k; i++) p = p w[1 + int(rand() * n)] (i + 1 < k ? " " : ".</p>\n")
			if (length(p) > body) p = substr(p, 1, body)
			out = out p; body -= length(p)
		}
		printf "%s%s", out, tail
	}'
}

# ---------------------------------------------------------------- network
OFFLOADS=(rx off tx off sg off tso off gso off gro off)
setup_net() {
	local ns host mac k
	for ns in "$NS_SW" "$NS_SRV" "$NS_C1" "$NS_C2"; do
		ip netns add "$ns"
		NAMESPACES+=("$ns")
		ip -n "$ns" link set lo up
	done
	# The switch has no address of its own and says nothing.
	ip netns exec "$NS_SW" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	ip -n "$NS_SW" link add br0 type bridge stp_state 0 forward_delay 0
	for host in srv:01 c1:11 c2:12; do
		mac=${host#*:} host=${host%:*} ns=$(ns_of "$host")
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.router_solicitations=0 \
			net.ipv6.conf.all.router_solicitations=0
		ip -n "$NS_SW" link add "p-$host" address "02:77:00:00:01:$mac" type veth \
			peer name eth0 address "02:77:00:00:00:$mac" netns "$ns"
		ip -n "$NS_SW" link set "p-$host" master br0
		# No offloads: the frames on the wire are what the capture holds,
		# one MTU each, with their real checksums.
		ip netns exec "$NS_SW" ethtool -K "p-$host" "${OFFLOADS[@]}" >/dev/null 2>&1 || true
		ip netns exec "$ns" ethtool -K eth0 "${OFFLOADS[@]}" >/dev/null 2>&1 || true
		ip netns exec "$ns" ethtool -k eth0 | grep -q '^tx-checksumming: off' ||
			die "cannot turn checksum offload off on eth0 of $host"
		ip -n "$ns" addr add "10.77.0.$((10#$mac))/24" dev eth0
		ip -n "$ns" addr add "fd77::$mac/64" dev eth0 nodad
		for ((k = 0; k < 10; k++)); do # more hosts behind c1 and c2, for ping
			[ "$host" = srv ] && break
			ip -n "$ns" addr add "10.77.0.$((10#$mac))$k/24" dev eth0
			ip -n "$ns" addr add "fd77::$mac$k/64" dev eth0 nodad
		done
		ip -n "$NS_SW" link set "p-$host" up
		ip -n "$ns" link set eth0 up
	done
	ip -n "$NS_SW" link set br0 up
	for host in c1 c2; do # reachability, before any capture runs
		ip netns exec "$(ns_of $host)" ping -c 1 -W 2 10.77.0.1 >/dev/null ||
			die "$host cannot reach srv over the bridge"
		ip netns exec "$(ns_of $host)" ping -c 1 -W 2 fd77::1 >/dev/null ||
			die "$host cannot reach srv over IPv6"
	done
}

# ---------------------------------------------------------------- capture
declare -A FILTER=(
	[http]="tcp port 80"
	[tls]="tcp port 443 or tcp port 4433"
	[dns]="port 53"
	[ssh]="tcp port 22"
	[icmp]="icmp or (icmp6 and (ip6[40] == 128 or ip6[40] == 129))"
	[ntp]="udp port 123"
	[redis]="tcp port 6379"
	[mqtt]="tcp port 1883"
	[bulk]="port 5201"
)

capture_start() { # LABEL
	local label=$1 i
	spawn "tcpdump-$label" "$NS_SW" tcpdump -i p-srv -n -s 0 -U -Z root \
		-w "$T/pcap/$label.pcap" "${FILTER[$label]}"
	CAP_PID=$LAST_PID
	for ((i = 0; i < 100; i++)); do
		grep -qs "listening on" "$T/log/tcpdump-$label.log" && return 0
		sleep 0.1
	done
	die "tcpdump did not start: $(cat "$T/log/tcpdump-$label.log")"
}

capture_stop() { # LABEL
	local label=$1 dropped
	sleep 1.5 # the last ACKs and FINs
	stop_pid "$CAP_PID"
	dropped=$(sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel.*/\1/p' "$T/log/tcpdump-$label.log")
	[ "${dropped:-0}" = 0 ] || die "$label: tcpdump dropped $dropped packets"
}

run_label() { # LABEL: servers up, capture, clients, everything down, publish
	local label=$1 i
	for i in "${!LABELS_ALL[@]}"; do [ "${LABELS_ALL[$i]}" = "$label" ] && break; done
	RANDOM=$((SEED + 101 * i)) # per label, so a subset captures the same plan
	CLOG=$T/log/$label-clients.log
	say "$label: starting servers"
	"servers_$label"
	capture_start "$label"
	say "$label: capturing (client log: $CLOG)"
	"clients_$label"
	capture_stop "$label"
	for i in "${LABEL_PIDS[@]}"; do stop_pid "$i"; done
	LABEL_PIDS=()
	sweep_ns
	[ -s "$T/pcap/$label.pcap" ] || die "$label: empty capture"
	cp "$T/pcap/$label.pcap" "$OUT/.$label.pcap.tmp"
	chmod 644 "$OUT/.$label.pcap.tmp"
	mv "$OUT/.$label.pcap.tmp" "$OUT/$label.pcap"
	say "$label: $OUT/$label.pcap, $(stat -c %s "$OUT/$label.pcap") bytes"
}

# ---------------------------------------------------------------- web content
# A small site: text pages, binary blobs, JSON items and a few licence texts.
PAGE_SIZES=(812 1460 2210 3075 4096 5120 6311 7900 9300 11024 12800 15000 17777 20480 24000 28100
	512 640 950 1800 2600 3400 1200 760)
BLOB_SIZES=(1024 2048 3500 5000 8192 12000 16384 24000 32768 40000 52000 64000)
LICENSES=(GPL-2 GPL-3 LGPL-2.1 Apache-2.0 MPL-2.0 Artistic BSD)
make_site() {
	local w=$T/www i n
	[ -d "$w" ] && return 0
	mkdir -p "$w/api" "$w/static" "$w/licenses"
	gen_text 1 2048 "tgpt example site" >"$w/index.html"
	for i in "${!PAGE_SIZES[@]}"; do
		n=$(printf %02d $((i + 1)))
		gen_text $((100 + i)) "${PAGE_SIZES[$i]}" "page $n" >"$w/page$n.html"
	done
	for i in "${!BLOB_SIZES[@]}"; do
		n=$(printf %02d $((i + 1)))
		gen_bytes $((200 + i)) "${BLOB_SIZES[$i]}" >"$w/static/blob$n.bin"
	done
	for ((i = 1; i <= 20; i++)); do
		awk -v id="$i" 'BEGIN { srand(300 + id)
			printf "{\"id\":%d,\"name\":\"item-%02d\",\"value\":%.4f,\"tags\":[", id, id, rand() * 1000
			k = int(rand() * 40); for (j = 0; j < k; j++) printf "%s\"t%03d\"", (j ? "," : ""), int(rand() * 1000)
			printf "],\"ok\":%s}\n", (rand() < 0.8 ? "true" : "false") }' >"$w/api/item-$(printf %02d "$i").json"
	done
	for i in "${LICENSES[@]}"; do
		[ -r "/usr/share/common-licenses/$i" ] && cp "/usr/share/common-licenses/$i" "$w/licenses/$i.txt"
	done
	gen_bytes 400 150000 >"$T/upload.bin"
	chmod -R a+rX "$w"
}

make_certs() {
	[ -d "$T/tls" ] && return 0
	mkdir -p "$T/tls"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
		-subj /CN=tgpt.test -addext subjectAltName=DNS:tgpt.test,DNS:www.tgpt.test \
		-keyout "$T/tls/ec.key" -out "$T/tls/ec.crt" 2>/dev/null
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=files.tgpt.test \
		-keyout "$T/tls/rsa.key" -out "$T/tls/rsa.crt" 2>/dev/null
	chmod 644 "$T"/tls/*
}

start_nginx() {
	make_site
	make_certs
	mkdir -p "$T/nginx"
	cat >"$T/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/log/nginx-error.log;
events { worker_connections 256; }
http {
	access_log $T/log/nginx-access.log;
	client_body_temp_path $T/nginx/body;
	proxy_temp_path $T/nginx/proxy;
	fastcgi_temp_path $T/nginx/fastcgi;
	uwsgi_temp_path $T/nginx/uwsgi;
	scgi_temp_path $T/nginx/scgi;
	types { text/html html; text/plain txt; application/json json; application/octet-stream bin; }
	default_type application/octet-stream;
	sendfile on;
	keepalive_timeout 15;
	gzip on;
	gzip_types text/plain application/json;
	gzip_min_length 256;
	server {
		listen 10.77.0.1:80;
		listen [fd77::1]:80;
		server_name tgpt.test www.tgpt.test;
		root $T/www;
		location /licenses/ { autoindex on; }
		location = /upload { client_max_body_size 4m; return 201 "stored\n"; }
	}
	server {
		listen 10.77.0.1:443 ssl http2;
		listen [fd77::1]:443 ssl http2;
		server_name tgpt.test www.tgpt.test;
		ssl_certificate $T/tls/ec.crt;
		ssl_certificate_key $T/tls/ec.key;
		ssl_protocols TLSv1.3;
		ssl_session_cache shared:tls:1m;
		root $T/www;
		location /licenses/ { autoindex on; }
		location = /upload { client_max_body_size 4m; return 201 "stored\n"; }
	}
}
EOF
	server nginx "$NS_SRV" nginx -e "$T/log/nginx-error.log" -p "$T/nginx" -c "$T/nginx/nginx.conf"
	wait_listen tcp 80
	wait_listen tcp 443
}

# web_request PROTO HOST: appends one request of the seeded plan to the array
# REQ (curl arguments).
web_request() {
	local proto=$1 host=$2 r url n
	r=$((RANDOM % 100))
	if [ $r -lt 42 ]; then
		nth n ${#PAGE_SIZES[@]}
		url=/page$n.html
		chance 45 && REQ+=(--compressed)
	elif [ $r -lt 60 ]; then
		nth n 20
		url=/api/item-$n.json
		chance 50 && REQ+=(--compressed)
	elif [ $r -lt 74 ]; then
		nth n ${#BLOB_SIZES[@]}
		url=/static/blob$n.bin
		chance 20 && REQ+=(-r "0-$((1000 + RANDOM % 4000))")
	elif [ $r -lt 80 ]; then
		pick url /licenses/ "/licenses/${LICENSES[RANDOM % ${#LICENSES[@]}]}.txt"
		chance 50 && REQ+=(--compressed)
	elif [ $r -lt 84 ]; then
		url=/index.html
		REQ+=(-I)
	elif [ $r -lt 88 ]; then
		url=/missing/$((RANDOM % 1000)).html
	elif [ $r -lt 95 ]; then
		url=/upload
		REQ+=(--data-binary "@$T/upload-$((RANDOM % 8)).bin" -H "Content-Type: application/octet-stream")
	else
		url=/
	fi
	REQ+=(-o /dev/null -w "%{http_code} %{size_download} %{url_effective}\n" "$proto://$host$url")
}

# Upload bodies of eight sizes, prefixes of one deterministic blob.
make_uploads() {
	local i
	for ((i = 0; i < 8; i++)); do head -c $((300 + i * i * 600)) "$T/upload.bin" >"$T/upload-$i.bin"; done
}

USER_AGENTS=("" "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0"
	"Wget/1.21.3" "tgpt-example/0.1"
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36")

# web_plan PROTO FAMILY NREQ [curl options...]: sets REQ to the arguments of
# one curl run, so one TCP connection carrying NREQ requests (keep-alive:
# curl reuses the connection across --next). Runs in this shell, never in a
# subshell, so the seeded plan stays the same from run to run.
web_plan() {
	local proto=$1 fam=$2 nreq=$3 host j ua base=()
	shift 3
	if [ "$proto" = https ]; then
		pick host tgpt.test www.tgpt.test
		if [ "$fam" = 6 ]; then base=(-k --resolve "$host:443:[fd77::1]"); else base=(-k --resolve "$host:443:10.77.0.1"); fi
	else
		if [ "$fam" = 6 ]; then host="[fd77::1]"; else host=10.77.0.1; fi
	fi
	pick ua "${USER_AGENTS[@]}"
	[ -n "$ua" ] && base+=(-A "$ua")
	base+=("$@")
	REQ=(-sS -g --max-time 20)
	for ((j = 0; j < nreq; j++)); do
		[ $j -gt 0 ] && REQ+=(--next -sS -g --max-time 20)
		REQ+=("${base[@]}")
		web_request "$proto" "$host"
	done
}

servers_http() { start_nginx; make_uploads; }
clients_http() {
	local i k n client fam nreq pids
	for ((i = 0; i < 80; i++)); do
		pick client c1 c1 c2
		fam=4; chance 20 && fam=6
		nreq=1; chance 30 && nreq=$((2 + RANDOM % 5))
		if chance 10; then # a burst: a few connections at once
			n=$((2 + RANDOM % 3)) pids=()
			for ((k = 0; k < n; k++)); do
				web_plan http "$fam" 1
				on "$client" curl "${REQ[@]}" &
				pids+=($!)
				pick client c1 c2
			done
			wait_all "${pids[@]}"
		else
			web_plan http "$fam" "$nreq"
			on "$client" curl "${REQ[@]}"
		fi
		pause 20 700
	done
}

# ---------------------------------------------------------------- tls
# TLS 1.3 only: curl against nginx (HTTP/1.1 and HTTP/2, an EC certificate,
# SNI) and openssl s_client against s_server (an RSA certificate, files
# served by -WWW, sessions resumed with PSK tickets).
servers_tls() {
	start_nginx
	make_uploads
	mkdir -p "$T/tls/sess"
	(cd "$T/www" && exec ip netns exec "$NS_SRV" openssl s_server -accept 4433 -naccept 1000 \
		-cert "$T/tls/rsa.crt" -key "$T/tls/rsa.key" -tls1_3 -WWW -quiet) >>"$T/log/s_server.log" 2>&1 &
	ALL_PIDS+=($!) LABEL_PIDS+=($!)
	wait_listen tcp 4433
}

TLS13_SUITES=(TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256)
TLS_GROUPS=(X25519 P-256 P-384 X448)

clients_tls() {
	local i client fam nreq suite group http file sess addr pids k n1 n2 n3
	for ((i = 0; i < 60; i++)); do
		pick client c1 c2
		fam=4; chance 25 && fam=6
		pick suite "${TLS13_SUITES[@]}"
		pick group "${TLS_GROUPS[@]}"
		if chance 70; then
			nreq=1; chance 35 && nreq=$((2 + RANDOM % 4))
			pick http --http1.1 --http2 --http2
			web_plan https "$fam" "$nreq" --tlsv1.3 --tls13-ciphers "$suite" --curves "$group" "$http"
			if chance 12; then
				on "$client" curl "${REQ[@]}" &
				pids=($!)
				web_plan https "$fam" 1 --tlsv1.3 --curves "$group"
				on "$client" curl "${REQ[@]}" &
				wait_all "${pids[@]}" $!
			else
				on "$client" curl "${REQ[@]}"
			fi
		else
			# s_client asks for one file of the site over HTTP/1.0; half the
			# time it resumes the session an earlier connection saved.
			if [ $fam = 6 ]; then addr="[fd77::1]:4433"; else addr=10.77.0.1:4433; fi
			nth n1 ${#PAGE_SIZES[@]}
			nth n2 8
			nth n3 20
			pick file "page$n1.html" "static/blob$n2.bin" "api/item-$n3.json"
			sess=$T/tls/sess/$client.pem
			k=(-connect "$addr" -servername files.tgpt.test -tls1_3 -ciphersuites "$suite" -groups "$group" -quiet)
			if [ -s "$sess" ] && chance 60; then k+=(-sess_in "$sess"); else k+=(-sess_out "$sess"); fi
			printf 'GET /%s HTTP/1.0\r\nHost: files.tgpt.test\r\n\r\n' "$file" >"$T/tls/req"
			on "$client" openssl s_client "${k[@]}" <"$T/tls/req"
		fi
		pause 30 900
	done
}

# ---------------------------------------------------------------- dns
# dnsmasq answers for tgpt.test from its own records (no upstream); dig asks
# for a seeded list of names and types, over UDP and TCP, with and without
# EDNS, cookies and the DO bit, names that exist and names that do not.
servers_dns() {
	local i words
	mkdir -p "$T/dns"
	{
		echo "port=53"
		echo "listen-address=10.77.0.1"
		echo "listen-address=fd77::1"
		echo "bind-interfaces"
		echo "no-resolv"
		echo "no-hosts"
		echo "no-poll"
		echo "local=/tgpt.test/"
		echo "local=/77.10.in-addr.arpa/"
		echo "domain=tgpt.test"
		echo "local-ttl=300"
		echo "pid-file=$T/dns/dnsmasq.pid"
		for ((i = 1; i <= 40; i++)); do
			printf 'host-record=host%02d.tgpt.test,10.77.1.%d,fd77:1::%x\n' "$i" "$i" "$i"
		done
		echo "host-record=mail.tgpt.test,10.77.1.200"
		echo "host-record=mx2.tgpt.test,10.77.1.201,fd77:1::c9"
		echo "cname=www.tgpt.test,host01.tgpt.test"
		echo "cname=files.tgpt.test,host02.tgpt.test"
		echo "cname=broker.tgpt.test,host05.tgpt.test"
		echo "mx-host=tgpt.test,mail.tgpt.test,10"
		echo "mx-host=tgpt.test,mx2.tgpt.test,20"
		echo "srv-host=_mqtt._tcp.tgpt.test,host05.tgpt.test,1883,0,10"
		echo "srv-host=_ssh._tcp.tgpt.test,host03.tgpt.test,22,0,5"
		echo "srv-host=_http._tcp.tgpt.test,host01.tgpt.test,80,10,60"
		echo "srv-host=_http._tcp.tgpt.test,host02.tgpt.test,80,10,40"
		echo 'txt-record=tgpt.test,"v=spf1 ip4:10.77.0.0/24 -all"'
		echo 'txt-record=_dmarc.tgpt.test,"v=DMARC1; p=none; rua=mailto:dmarc@tgpt.test"'
		# long enough that a plain 512-byte UDP answer is truncated and dig
		# retries over TCP
		printf 'txt-record=long.tgpt.test'
		for ((i = 0; i < 4; i++)); do
			words=$(gen_text $((500 + i)) 400 | tr -dc 'a-z ')
			printf ',"%s"' "${words:60:150}"
		done
		echo
	} >"$T/dns/dnsmasq.conf"
	server dnsmasq "$NS_SRV" dnsmasq -k -C "$T/dns/dnsmasq.conf"
	wait_listen udp 53
	wait_listen tcp 53
}

clients_dns() {
	local i j n client srv name qtype opts pids
	for ((i = 0; i < 150; i++)); do
		pick client c1 c1 c2
		srv=@10.77.0.1; chance 20 && srv=@fd77::1
		opts=(+tries=1 +time=2)
		chance 10 && opts+=(+tcp)
		chance 10 && opts+=(+noedns)
		chance 25 && opts+=(+nocookie)
		chance 12 && opts+=(+dnssec)
		chance 8 && opts+=(+norecurse)
		chance 10 && opts+=(+bufsize=1232)
		n=1; chance 15 && n=$((2 + RANDOM % 3)) # dig asks them one after another
		local q=()
		for ((j = 0; j < n; j++)); do
			case $((RANDOM % 20)) in
			0 | 1 | 2 | 3 | 4 | 5 | 6) nth name 40; name=host$name.tgpt.test qtype=A ;;
			7 | 8 | 9) nth name 40; name=host$name.tgpt.test qtype=AAAA ;;
			10) pick name www.tgpt.test files.tgpt.test broker.tgpt.test; qtype=A ;;
			11) name=tgpt.test qtype=MX ;;
			12) pick name tgpt.test _dmarc.tgpt.test long.tgpt.test; qtype=TXT ;;
			13) pick name _mqtt._tcp.tgpt.test _ssh._tcp.tgpt.test _http._tcp.tgpt.test; qtype=SRV ;;
			14) name=$((1 + RANDOM % 40)).1.77.10.in-addr.arpa qtype=PTR ;;
			15 | 16) name=nohost$((RANDOM % 500)).tgpt.test; pick qtype A AAAA ;;
			17) pick name example.com debian.org; pick qtype A AAAA NS ;;
			18) name=tgpt.test; pick qtype SOA NS ANY ;;
			*) name=mail.tgpt.test qtype=A ;;
			esac
			q+=("$name" "$qtype")
		done
		if chance 8; then # a few clients at once
			on "$client" dig "$srv" "${opts[@]}" "${q[@]}" &
			pids=($!)
			pick client c1 c2
			nth name 40
			on "$client" dig "$srv" +tries=1 +time=2 "host$name.tgpt.test" &
			wait_all "${pids[@]}" $!
		else
			on "$client" dig "$srv" "${opts[@]}" "${q[@]}"
		fi
		pause 5 300
	done
}

# ---------------------------------------------------------------- ssh
# sshd with its own host keys and config; clients run commands, copy files
# with scp (SFTP and the old protocol) and sftp, type into an interactive
# shell at human speed, and share one connection between sessions. Key
# exchanges, ciphers and MACs vary. The commands only read, and write only
# under the temporary directory.
SSH_KEX=(curve25519-sha256 sntrup761x25519-sha512@openssh.com ecdh-sha2-nistp256 diffie-hellman-group14-sha256)
SSH_CIPHERS=(chacha20-poly1305@openssh.com aes128-gcm@openssh.com aes256-gcm@openssh.com aes128-ctr aes256-ctr)
SSH_MACS=(hmac-sha2-256-etm@openssh.com hmac-sha2-512-etm@openssh.com umac-64-etm@openssh.com hmac-sha1)

servers_ssh() {
	local d=$T/ssh
	make_site
	mkdir -p "$d/recv"
	if [ ! -d /run/sshd ]; then mkdir -m 755 /run/sshd; MADE_RUN_SSHD=1; fi
	ssh-keygen -q -N '' -t ed25519 -f "$d/host_ed25519"
	ssh-keygen -q -N '' -t ecdsa -f "$d/host_ecdsa"
	ssh-keygen -q -N '' -t rsa -b 2048 -f "$d/host_rsa"
	ssh-keygen -q -N '' -t ed25519 -f "$d/id_ed25519"
	ssh-keygen -q -N '' -t ecdsa -b 384 -f "$d/id_ecdsa"
	ssh-keygen -q -N '' -t rsa -b 3072 -f "$d/id_rsa"
	cat "$d"/id_*.pub >"$d/authorized_keys"
	cat >"$d/sshd_config" <<EOF
Port 22
ListenAddress 10.77.0.1
ListenAddress fd77::1
HostKey $d/host_ed25519
HostKey $d/host_ecdsa
HostKey $d/host_rsa
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
UseDNS no
Subsystem sftp internal-sftp
EOF
	ip netns exec "$NS_SRV" /usr/sbin/sshd -t -f "$d/sshd_config"
	server sshd "$NS_SRV" /usr/sbin/sshd -D -e -f "$d/sshd_config"
	wait_listen tcp 22
}

# ssh_opts FAMILY: sets SSH to the options of one client run (seeded).
ssh_opts() {
	local kex cipher mac key
	pick kex "${SSH_KEX[@]}"
	pick cipher "${SSH_CIPHERS[@]}"
	pick key id_ed25519 id_ed25519 id_ecdsa id_rsa
	SSH=(-F /dev/null -i "$T/ssh/$key" -o BatchMode=yes -o StrictHostKeyChecking=no
		-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=10
		-o KexAlgorithms="$kex" -c "$cipher")
	if [[ $cipher == *ctr ]]; then
		pick mac "${SSH_MACS[@]}"
		SSH+=(-o MACs="$mac")
	fi
	chance 15 && SSH+=(-C)
	[ "$1" = 6 ] && SSH+=(-6)
	return 0
}

# ssh_typing LINE...: draws the delays of typing the lines at human speed,
# here in this shell (KEYS: characters, DELAYS: ms); type_keys replays them.
ssh_typing() {
	local line k
	KEYS=() DELAYS=()
	for line; do
		for ((k = 0; k < ${#line}; k++)); do
			KEYS+=("${line:k:1}") DELAYS+=($((40 + RANDOM % 160)))
		done
		KEYS+=($'\n') DELAYS+=($((200 + RANDOM % 700)))
	done
}
type_keys() {
	local k
	sleep 1
	for k in "${!KEYS[@]}"; do
		printf %s "${KEYS[$k]}"
		sleep "$((DELAYS[k] / 1000)).$(printf %03d $((DELAYS[k] % 1000)))"
	done
	sleep 0.5
}

clients_ssh() {
	local i client fam host w=$T/www f cm
	local commands=("uname -a" "ls -l /usr/share/common-licenses" "cat /etc/os-release" "id; uptime"
		"ls -la $w $w/static" "sha256sum $w/static/*.bin" "wc -c $w/*.html" "df -h /tmp"
		"cat $w/licenses/GPL-2.txt" "head -c 30000 $w/static/blob09.bin | base64"
		"for i in 1 2 3; do date +%T.%N; sleep 0.4; done" "ps -o pid,comm -p \$\$" "env | sort")
	for ((i = 0; i < 34; i++)); do
		pick client c1 c2
		fam=4 host=10.77.0.1
		chance 25 && fam=6 host=fd77::1
		ssh_opts $fam
		case $((RANDOM % 11)) in
		0 | 1 | 2 | 3 | 4) # a command or two
			pick cmd "${commands[@]}"
			chance 30 && cmd="$cmd; ${commands[RANDOM % ${#commands[@]}]}"
			on "$client" ssh "${SSH[@]}" "root@$host" "$cmd" ;;
		5 | 6) # upload, by the old scp protocol or by SFTP
			nth f ${#BLOB_SIZES[@]}
			f=$w/static/blob$f.bin
			if chance 50; then on "$client" scp -q -O "${SSH[@]}" "$f" "root@[$host]:$T/ssh/recv/up$i.bin"
			else on "$client" scp -q "${SSH[@]}" "$f" "root@[$host]:$T/ssh/recv/up$i.bin"; fi ;;
		7) # download
			nth f ${#PAGE_SIZES[@]}
			f=$w/page$f.html
			on "$client" scp -q "${SSH[@]}" "root@[$host]:$f" "$T/ssh/recv/down$i.html" ;;
		8) # an sftp session
			printf '%s\n' "cd $w" ls "get page0$((1 + RANDOM % 9)).html $T/ssh/recv/sftp$i.html" \
				"cd static" "ls -l" "put $w/api/item-0$((1 + RANDOM % 9)).json $T/ssh/recv/sftp$i.json" bye >"$T/ssh/batch$i"
			on "$client" sftp -q "${SSH[@]}" -b "$T/ssh/batch$i" "root@[$host]" ;;
		9) # three commands through one shared connection (multiplexing)
			cm=(-o ControlMaster=auto -o "ControlPath=$T/ssh/cm-$i" -o ControlPersist=3)
			on "$client" ssh "${SSH[@]}" "${cm[@]}" "root@$host" "${commands[RANDOM % ${#commands[@]}]}"
			pause 200 1200
			on "$client" ssh "${SSH[@]}" "${cm[@]}" "root@$host" "${commands[RANDOM % ${#commands[@]}]}"
			pause 200 1200
			on "$client" ssh "${SSH[@]}" "${cm[@]}" "root@$host" "${commands[RANDOM % ${#commands[@]}]}"
			on "$client" ssh "${SSH[@]}" "${cm[@]}" -O exit "root@$host" ;;
		*) # an interactive shell, typed into
			ssh_typing ls pwd "uname -r" "ls /usr/share | head -4" "echo \$((6 * 7))" exit
			type_keys | on "$client" ssh -tt "${SSH[@]}" "root@$host" ;;
		esac
		pause 100 1200
	done
}

# ---------------------------------------------------------------- icmp
# ping both ways (clients to srv, srv to clients), IPv4 and IPv6, with
# seeded counts, sizes, intervals, patterns, TTLs and TOS; a few at once.
servers_icmp() { :; }
clients_icmp() {
	local b k n from to fam delay count interval size args pids host peer sub prefix pat
	for ((b = 0; b < 9; b++)); do
		n=$((4 + RANDOM % 4)) pids=()
		for ((k = 0; k < n; k++)); do
			pick from c1 c1 c2 c2 srv
			fam=4; chance 30 && fam=6
			# the client end: c1 or c2 by its own address (.11, .12) or one
			# of the ten behind it (.110-.119, .120-.129)
			peer=$from
			[ "$from" = srv ] && pick peer c1 c2
			pick sub "" "" 0 1 2 3 4 5 6 7 8 9
			if [ $fam = 6 ]; then prefix=fd77::; else prefix=10.77.0.; fi
			[ "$peer" = c1 ] && host=${prefix}11$sub || host=${prefix}12$sub
			if [ "$from" = srv ]; then args=(-n) to=$host; else args=(-n -I "$host") to=${prefix}1; fi
			count=$((1 + RANDOM % 8))
			pick interval 0.2 0.25 0.3 0.5 0.5 1
			pick size 0 8 16 32 56 56 56 56 64 100 120 200 256 500 512 1000 1200 1400 1452
			args+=(-c "$count" -i "$interval" -s "$size" -W 2)
			if chance 15; then printf -v pat %02x%02x $((RANDOM % 256)) $((RANDOM % 256)); args+=(-p "$pat"); fi
			chance 10 && args+=(-t $((16 << RANDOM % 3)))
			[ $fam = 4 ] && chance 10 && args+=(-Q $((4 * (RANDOM % 64))))
			delay=$((RANDOM % 1500))
			{ sleep "$((delay / 1000)).$(printf %03d $((delay % 1000)))"; on "$from" ping "${args[@]}" "$to"; } &
			pids+=($!)
		done
		wait_all "${pids[@]}"
		pause 100 800
	done
}

# ---------------------------------------------------------------- ntp
# chronyd serves its local clock (stratum 8) without touching the host's;
# clients query it only: ntpdig (one or more samples, never -S/-s) and
# chronyd -Q (measure the offset, do not set the clock).
servers_ntp() {
	mkdir -p "$T/ntp"
	cat >"$T/ntp/server.conf" <<EOF
local stratum 8
allow 10.77.0.0/24
allow fd77::/64
bindaddress 10.77.0.1
bindaddress fd77::1
cmdport 0
pidfile $T/ntp/server.pid
EOF
	server chronyd "$NS_SRV" chronyd -x -d -u root -f "$T/ntp/server.conf"
	wait_listen udp 123
	sleep 1
}

clients_ntp() {
	local i client srv samples gap pids conf
	for ((i = 0; i < 24; i++)); do
		pick client c1 c2
		srv=10.77.0.1; chance 25 && srv=fd77::1
		if chance 70; then
			samples=1; chance 40 && samples=$((2 + RANDOM % 4))
			pick gap 50 200 500 1000
			if chance 20; then # two at once
				on "$client" ntpdig -t 2 -p "$samples" -g "$gap" "$srv" &
				pids=($!)
				pick client c1 c2
				on "$client" ntpdig -t 2 "$srv" &
				wait_all "${pids[@]}" $!
			else
				on "$client" ntpdig -t 2 -p "$samples" -g "$gap" "$srv"
			fi
		else
			conf=$T/ntp/client$i.conf
			printf 'server %s iburst maxsamples %d\ncmdport 0\npidfile %s\n' "$srv" $((2 + RANDOM % 4)) \
				"$T/ntp/client$i.pid" >"$conf"
			on "$client" chronyd -Q -t 12 -u root -f "$conf"
		fi
		pause 100 1500
	done
}

# ---------------------------------------------------------------- redis
# redis-server without persistence; redis-cli runs single commands, repeated
# commands with pauses, a mass insert (--pipe) and pub/sub; redis-benchmark
# opens several connections at once. Values of seeded sizes.
servers_redis() {
	mkdir -p "$T/redis"
	server redis "$NS_SRV" redis-server --bind 10.77.0.1 fd77::1 --port 6379 --protected-mode no \
		--save "" --appendonly no --daemonize no --dir "$T/redis" --logfile ""
	wait_listen tcp 6379
}

# redis_value N: sets VALUE to a word-like value of about N bytes (seeded).
redis_value() {
	local n=$1
	VALUE=""
	while [ ${#VALUE} -lt "$n" ]; do VALUE+="${WORDS[RANDOM % ${#WORDS[@]}]}-"; done
	VALUE=${VALUE:0:n}
}
WORDS=(alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa
	quebec romeo sierra tango uniform victor whiskey xray yankee zulu)

clients_redis() {
	local i j client h cmd line key sub n
	# a listener for the whole run, and another one later
	on_bg c2 redis-cli -h 10.77.0.1 SUBSCRIBE news alerts
	sub=$LAST_PID
	for ((i = 0; i < 46; i++)); do
		pick client c1 c1 c2
		h=10.77.0.1; chance 20 && h=fd77::1
		key=k:$((RANDOM % 60))
		case $((RANDOM % 16)) in
		0 | 1 | 2) redis_value $((8 << RANDOM % 10)); cmd=(SET "$key" "$VALUE") ;;
		3 | 4) cmd=(GET "$key") ;;
		5) cmd=(MGET k:$((RANDOM % 60)) k:$((RANDOM % 60)) k:$((RANDOM % 60)) k:$((RANDOM % 60))) ;;
		6) cmd=(INCRBY "counter:$((RANDOM % 5))" $((1 + RANDOM % 100))) ;;
		7) redis_value $((4 + RANDOM % 60)); cmd=(LPUSH "list:$((RANDOM % 4))" "$VALUE" "$key" "$((RANDOM))") ;;
		8) cmd=(LRANGE "list:$((RANDOM % 4))" 0 -1) ;;
		9) redis_value $((4 + RANDOM % 200))
			cmd=(HSET "user:$((RANDOM % 20))" name "${WORDS[RANDOM % 26]}" bio "$VALUE" visits $((RANDOM % 1000))) ;;
		10) cmd=(HGETALL "user:$((RANDOM % 20))") ;;
		11) pick line INFO DBSIZE PING "CLIENT LIST" "CONFIG GET maxmemory" "SCAN 0 COUNT 20" "KEYS k:1*"
			read -ra cmd <<<"$line" ;;
		12) cmd=(-r $((2 + RANDOM % 5)) -i "0.$((1 + RANDOM % 5))" INCR "counter:$((RANDOM % 5))") ;;
		13) redis_value $((10 + RANDOM % 300)); cmd=(PUBLISH news "$VALUE") ;;
		14) cmd=(EXPIRE "$key" $((10 + RANDOM % 300))) ;;
		*) cmd=(DEL "$key") ;;
		esac
		on "$client" redis-cli -h "$h" "${cmd[@]}"
		if [ $i = 20 ]; then # a mass insert through --pipe
			n=$((100 + RANDOM % 200))
			: >"$T/redis/mass.txt"
			for ((j = 0; j < n; j++)); do
				redis_value $((8 + RANDOM % 120))
				printf 'SET mass:%d %s\r\n' "$j" "$VALUE" >>"$T/redis/mass.txt"
				chance 30 && printf 'RPUSH massl:%d %d\r\n' $((j % 7)) "$j" >>"$T/redis/mass.txt"
			done
			on c1 redis-cli -h 10.77.0.1 --pipe <"$T/redis/mass.txt"
			on c2 redis-cli -h fd77::1 PUBLISH alerts "mass insert of $n keys done"
		fi
		if [ $i = 30 ]; then # a benchmark: several clients at once
			on c2 redis-benchmark -h 10.77.0.1 -q -c $((2 + RANDOM % 3)) -n $((150 + RANDOM % 150)) \
				-d $((16 << RANDOM % 5)) -t set,get,incr,lpush,hset
		fi
		pause 20 600
	done
	stop_pid "$sub"
}

# ---------------------------------------------------------------- mqtt
# mosquitto as the broker; subscribers on topic filters (MQTT 3.1.1 and 5)
# stay connected while publishers send sensor readings, commands, log lines
# and a few larger blobs, at QoS 0, 1 and 2, some retained, some with wills.
servers_mqtt() {
	mkdir -p "$T/mqtt"
	make_site
	cat >"$T/mqtt/mosquitto.conf" <<EOF
per_listener_settings false
allow_anonymous true
persistence false
listener 1883 10.77.0.1
listener 1883 fd77::1
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
sys_interval 10
EOF
	server mosquitto "$NS_SRV" mosquitto -c "$T/mqtt/mosquitto.conf"
	wait_listen tcp 1883
}

ONOFF=(on off)
clients_mqtt() {
	local i j n client h topic qos ver args subs=() lines delay
	on_bg c2 mosquitto_sub -h 10.77.0.1 -i dashboard -q 1 -v -t 'sensors/#'
	subs+=("$LAST_PID")
	on_bg c1 mosquitto_sub -h fd77::1 -i actuator-1 -V 5 -q 2 -t 'cmd/+/set' -t 'firmware/#'
	subs+=("$LAST_PID")
	on_bg c2 mosquitto_sub -h 10.77.0.1 -i monitor -V 311 -t '$SYS/broker/uptime' -t '$SYS/broker/clients/connected'
	subs+=("$LAST_PID")
	sleep 1
	for ((i = 0; i < 48; i++)); do
		pick client c1 c1 c2
		h=10.77.0.1; chance 25 && h=fd77::1
		pick qos 0 0 1 1 2
		pick ver mqttv311 mqttv311 mqttv5 mqttv31
		args=(-h "$h" -V "$ver" -q "$qos" -i "pub-$client-$i")
		chance 10 && args+=(-r)
		chance 10 && args+=(--will-topic "status/$client" --will-payload offline -k 30)
		case $((RANDOM % 10)) in
		0 | 1 | 2 | 3)
			pick topic temp humidity pressure
			topic=sensors/$topic/$((1 + RANDOM % 6))
			on "$client" mosquitto_pub "${args[@]}" -t "$topic" \
				-m "{\"v\":$((RANDOM % 400)).$((RANDOM % 10)),\"seq\":$i}" ;;
		4 | 5)
			on "$client" mosquitto_pub "${args[@]}" -t "cmd/dev$((1 + RANDOM % 4))/set" \
				-m "{\"power\":\"${ONOFF[RANDOM % 2]}\",\"level\":$((RANDOM % 100))}" ;;
		6 | 7) # several messages over one connection, one line each
			lines=() delay=() n=$((2 + RANDOM % 6))
			for ((j = 0; j < n; j++)); do
				redis_value $((10 + RANDOM % 150))
				lines+=("$(date -d @$((1700000000 + i * 100 + j)) -u +%FT%TZ) app[$((RANDOM % 9))]: $VALUE")
				delay+=($((100 + RANDOM % 600)))
			done
			topic=logs/app$((RANDOM % 3))
			{ for j in "${!lines[@]}"; do
				printf '%s\n' "${lines[$j]}"
				sleep "0.$(printf %03d "${delay[$j]}")"
			done; } | on "$client" mosquitto_pub "${args[@]}" -t "$topic" -l ;;
		8) # a blob
			nth n 7
			on "$client" mosquitto_pub "${args[@]}" -t "firmware/dev$((1 + RANDOM % 4))" \
				-f "$T/www/static/blob$n.bin" ;;
		*) # a retained value read back
			on "$client" mosquitto_sub -h "$h" -V "$ver" -i "get-$i" -t "sensors/temp/$((1 + RANDOM % 6))" -C 1 -W 2 ||
				true ;;
		esac
		pause 30 900
	done
	for i in "${subs[@]}"; do stop_pid "$i"; done
}

# ---------------------------------------------------------------- bulk
# iperf3 transfers of a few hundred KB each: TCP both ways, parallel streams,
# UDP, paced and unpaced, IPv4 and IPv6. Each test has its control
# connection next to the data.
servers_bulk() {
	server iperf3 "$NS_SRV" iperf3 -s
	wait_listen tcp 5201
}
clients_bulk() {
	on c1 iperf3 -c 10.77.0.1 -n 300K -b 30M
	pause 300 1000
	on c2 iperf3 -c 10.77.0.1 -n 240K -R -b 12M
	pause 300 1000
	on c1 iperf3 -c fd77::1 -n 200K -P 2 --repeating-payload -b 20M
	pause 300 1000
	on c2 iperf3 -c 10.77.0.1 -u -b 3M -n 120K -l 1200
	pause 300 1000
	on c1 iperf3 -c 10.77.0.1 -n 160K -l 8K -M 1000 -R
	pause 300 1000
	on c2 iperf3 -c fd77::1 -n 128K -M 600 -b 5M
	pause 300 1000
	on c1 iperf3 -c fd77::1 -u -b 1M -n 60K -l 400 -R
}

# ---------------------------------------------------------------- index
# What each capture holds, for dir/README.
DESC_http="HTTP/1.1, curl against nginx: GET of text pages, JSON items, binary
  blobs and licence texts (some gzip-compressed, some byte ranges), HEAD, POST
  uploads of 0.3-30 KB, 404s; one to six requests per connection (keep-alive),
  sometimes a few connections at once; five user agents; IPv4 and IPv6."
DESC_tls="TLS 1.3 only. curl against nginx (EC P-256 certificate, SNI tgpt.test or
  www.tgpt.test, HTTP/1.1 and HTTP/2, one to five requests per connection) and
  openssl s_client against s_server (RSA-2048 certificate, one file per
  connection, about half of the sessions resumed with a PSK ticket); the three
  TLS 1.3 cipher suites and the groups X25519, P-256, P-384 and X448."
DESC_dns="DNS, dig against dnsmasq serving tgpt.test from its own records: A,
  AAAA, CNAME, MX, TXT (one long enough to be truncated over plain UDP), SRV,
  PTR, SOA, NS, ANY; NXDOMAIN for unknown names and REFUSED for names outside
  the zone; over UDP and TCP, with and without EDNS, cookies and the DO bit;
  one to four queries per dig run (each on its own port); IPv4 and IPv6."
DESC_ssh="SSH, OpenSSH client and sshd (public keys ed25519, ECDSA, RSA; key
  exchanges curve25519, sntrup761x25519, ECDH P-256, DH group 14; ciphers
  chacha20-poly1305, AES-GCM, AES-CTR with several MACs; some compressed):
  remote commands, scp up and down (SFTP and the old protocol), sftp batch
  sessions, three sessions over one multiplexed connection, and interactive
  shells typed into at human speed."
DESC_icmp="ICMP and ICMPv6 echo (ping) between the server and 22 client
  addresses, both ways: 1-8 echoes per run at intervals of 0.2-1 s, payloads of
  0-1452 bytes, some with a pattern, a TTL or a TOS; several runs at once."
DESC_ntp="NTP, clients querying chronyd (serving its local clock at stratum 8):
  ntpdig with one to five samples and chronyd -Q with two to five; each request
  goes from a fresh port, so each flow is one request and its answer."
DESC_redis="Redis (RESP), redis-cli against redis-server: SET/GET of values of
  8 B to 4 KB, MGET, INCRBY, lists, hashes, EXPIRE, DEL, INFO, SCAN, KEYS,
  repeated commands at intervals on one connection, a --pipe mass insert,
  PUBLISH to a subscriber that stays connected, and a redis-benchmark run
  with several parallel connections."
DESC_mqtt="MQTT 3.1, 3.1.1 and 5, mosquitto_pub/mosquitto_sub against the mosquitto
  broker: three long-lived subscribers (topic filters, \$SYS), publishers of
  sensor readings, commands, multi-line log streams and binary blobs of 1-16 KB
  at QoS 0, 1 and 2, retained messages read back, wills; IPv4 and IPv6."
DESC_bulk="Bulk transfer, iperf3: seven tests of 60-300 KB, TCP both ways (-R),
  two parallel streams, UDP at a fixed rate, MSS 600 and 1000, paced and not;
  each test is a control connection next to its data connections."

# conversations FILE: TCP, UDP and ICMP echo conversations as tshark sees them.
conversations() {
	command -v tshark >/dev/null || { echo "-"; return 0; }
	local tcp udp icmp
	tcp=$(tshark -r "$1" -q -z conv,tcp 2>/dev/null | grep -c '<->' || true)
	udp=$(tshark -r "$1" -q -z conv,udp 2>/dev/null | grep -c '<->' || true)
	icmp=$(tshark -r "$1" -Y 'icmp.type == 8 || icmpv6.type == 128' -T fields -e ip.src -e ipv6.src \
		-e ip.dst -e ipv6.dst -e icmp.ident -e icmpv6.echo.identifier 2>/dev/null | sort -u | grep -c . || true)
	echo "$tcp/$udp/$icmp"
}

# flows FILE: flow records pcap2flow --all makes of it, when it is built.
flows() {
	local p=$HERE/../bin/pcap2flow m=$HERE/../build/tests/mpdump
	[ -x "$p" ] && [ -x "$m" ] || { echo "-"; return 0; }
	"$p" -a -q "$1" | "$m" -k t | grep -c '"flow"' || true
}

write_index() {
	local l f rel="" total=0 size packets versions
	[ "$OUT" = "$HERE/data" ] && rel=data/
	local tsv=$OUT/labels.tsv
	[ "$OUT" = "$HERE/data" ] && tsv=$HERE/labels.tsv
	: >"$tsv.tmp"
	for l in "${LABELS_ALL[@]}"; do
		[ -f "$OUT/$l.pcap" ] && printf '%s\t%s\n' "$rel$l.pcap" "$l" >>"$tsv.tmp"
	done
	mv "$tsv.tmp" "$tsv"
	versions=$(dpkg-query -W -f '${Package} ${Version}\n' nginx-light curl openssl dnsmasq-base \
		bind9-dnsutils openssh-server iputils-ping chrony ntpsec-ntpdig redis-server mosquitto iperf3 \
		tcpdump 2>/dev/null | sed 's/^/  /' || true)
	{
		cat <<EOF
Example captures of tgpt
========================

Real programs talking to each other, captured by examples/capture.sh: four
network namespaces form a small LAN (a bridge and three hosts on veth pairs:
srv 10.77.0.1/fd77::1 runs the servers; c1 10.77.0.11/fd77::11 and c2
10.77.0.12/fd77::12 run the clients, with ten more addresses each for ping),
and tcpdump listens on the switch port of srv. Servers are the Debian
packages, started by hand with their own configuration; nothing left the
namespaces. One application per file, named by its label; labels.tsv (one
directory up) lists them as file<TAB>label, paths relative to examples/.

Every file is a classic pcap (link type 1, Ethernet; microsecond time stamps;
snapshot length 262144, so whole frames), with offloads turned off on the veth
pairs: one frame per packet on the wire, at most 1514 bytes, with real
checksums. A capture filter per label keeps only that application's packets
(ARP, neighbour discovery and the like are left out).

Request lists, sizes, pauses and content come from fixed seeds, so a new run
gives captures of the same kind; keys, ports, clocks and nonces differ.

Remake (as root; about six minutes; needs the packages of make deps-capture):
  sudo make deps-capture
  sudo examples/capture.sh            # all labels
  sudo examples/capture.sh dns ntp    # just these; this file is rewritten

flows: flow records of pcap2flow --all (TCP and UDP by 5-tuple, ICMP by
address pair, 120 s idle timeout). conversations: TCP/UDP conversations and
ICMP echo sessions (by identifier) as tshark counts them.

EOF
		printf '%-6s %-12s %8s %6s %14s %9s\n' label file packets flows conversations bytes
		for l in "${LABELS_ALL[@]}"; do
			f=$OUT/$l.pcap
			[ -f "$f" ] || continue
			size=$(stat -c %s "$f")
			total=$((total + size))
			packets=$(tcpdump -r "$f" -n -q 2>/dev/null | wc -l)
			printf '%-6s %-12s %8s %6s %14s %9s\n' "$l" "$l.pcap" "$packets" "$(flows "$f")" \
				"$(conversations "$f")" "$size"
		done
		printf '%-6s %-12s %8s %6s %14s %9s\n\n' total "" "" "" "" "$total"
		for l in "${LABELS_ALL[@]}"; do
			[ -f "$OUT/$l.pcap" ] || continue
			local d=DESC_$l
			printf '%s.pcap\n  %s\n\n' "$l" "${!d}"
		done
		echo "Made on $(date -u +%F) with Debian $(cat /etc/debian_version 2>/dev/null || echo '?'), Linux $(uname -r), and:"
		echo "$versions"
	} >"$OUT/README.tmp"
	mv "$OUT/README.tmp" "$OUT/README"
	say "wrote $OUT/README and $tsv"
}

# ---------------------------------------------------------------- main
if [ "$REINDEX" = 1 ]; then
	write_index
	exit 0
fi
T=$(mktemp -d /tmp/tgpt-capture.XXXXXX)
chmod 755 "$T" # servers that drop privileges read their files from here
mkdir -p "$T/log" "$T/pcap"
setup_net
for label in "${LABELS[@]}"; do run_label "$label"; done
write_index
