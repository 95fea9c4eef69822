#!/usr/bin/env bash
# Installs the Debian packages fullnat's tests and lab use, when they are missing.
# Called by `npm test` and `npm start`; safe to run again (installs only what is absent).
#   tshark     independent decoder that checks our packets and checksums
#   python3-scapy   a second independent decoder: reads UOA datagrams (IP option 31, protocol 248)
#   tcpdump    captures in the lab
#   iproute2   `ip netns`, veth, routes for the lab
#   clang, libbpf-dev, bpftool   build and load the eBPF TOA receiver for real servers
#   curl       fetches /metrics in the end-to-end tests; the client of the IPv6 one (curl -6)
#   nginx      an unmodified real server in the end-to-end tests
#   dnsmasq-base, bind9-dnsutils   an unmodified UDP server (DNS) and its client (dig) in the UDP end-to-end test
#   iputils-ping, openssl   PING_CHECK's echo, and the self-signed certificate of the SSL_GET test
#   chromium   headless screenshot of doctor's HTML report
#   bird2      the BGP speaker a fleet node runs, and the router of the cluster tests and lab
#   iperf3, wrk, haproxy, nftables, ethtool   the network benchmark (npm run bench -- net)
#   ipvsadm    its printf formats are the reference fullnat ctl's listings are compared with
#   prometheus-node-exporter   its ipvs collector is the reference for fullnat's node_ipvs_* series
#   systemd    systemd-analyze verify checks the unit `fullnat systemd-unit` prints
#   keepalived  its samples (/usr/share/doc/keepalived/samples) and `keepalived -t` check that fullnat reads keepalived's files
# Under FULLNAT_REQUIRE_ALL=1 (set by .ci/run) a tool that is still missing afterwards is an
# error (exit 1): the tests that need it would skip, and CI must not pass by skipping.
set -u
required=0
[ "${FULLNAT_REQUIRE_ALL:-}" = 1 ] && required=1
declare -A need=(
  [tshark]="tshark: independent packet/checksum decoder used by the wire tests"
  [scapy]="python3-scapy: independent decoder of the UOA datagrams in the wire tests (IP option 31, protocol 248, checksums)"
  [tcpdump]="tcpdump: packet captures in the lab"
  [ip]="iproute2: network namespaces and routes for the lab"
  [clang]="clang: compiles the eBPF TOA receiver (real-server side)"
  [bpf_helpers]="libbpf-dev: headers for the eBPF TOA receiver"
  [bpftool]="bpftool: loads and attaches the eBPF TOA receiver"
  [curl]="curl: scrapes /metrics in the end-to-end tests; the IPv6 test's client (curl -6)"
  [nginx]="nginx: an unmodified real server in the end-to-end tests (TOA via eBPF, PROXY protocol)"
  [dnsmasq]="dnsmasq-base: an unmodified DNS server behind the LB in the UDP end-to-end test (its query log names the client)"
  [dig]="bind9-dnsutils: dig, the DNS client of the UDP end-to-end test"
  [ping]="iputils-ping: ping, which PING_CHECK runs (Node has no raw sockets); its namespace test"
  [openssl]="openssl: makes the self-signed certificate the SSL_GET test's nginx serves"
  [chromium]="chromium: renders doctor's HTML report in a headless screenshot test"
  [bird]="bird2: the BGP (and BFD) speaker of a fleet node, and the router in the cluster tests and lab"
  [iperf3]="iperf3: throughput in npm run bench -- net"
  [wrk]="wrk: connections per second and latency in npm run bench -- net"
  [haproxy]="haproxy: the peer fullnat is compared with in npm run bench -- net"
  [nft]="nftables: the kernel's own full NAT in npm run bench -- net"
  [ethtool]="ethtool: turns offloads off for the small-packet benchmark"
  [ipvsadm]="ipvsadm: the printf formats in its binary are what fullnat ctl's listings are compared with"
  [systemd-analyze]="systemd: systemd-analyze verify checks the unit fullnat systemd-unit prints"
  [node_exporter]="prometheus-node-exporter: its ipvs collector, on a /proc written by the test, is what fullnat's node_ipvs_* series are compared with"
  [keepalived]="keepalived: its shipped sample configs and 'keepalived -t', the input and referee of the keepalived-samples test"
)
declare -A pkg=([tshark]=tshark [scapy]=python3-scapy [tcpdump]=tcpdump [ip]=iproute2 [clang]=clang [bpf_helpers]=libbpf-dev [bpftool]=bpftool [curl]=curl [nginx]=nginx-light [dnsmasq]=dnsmasq-base [dig]=bind9-dnsutils [ping]=iputils-ping [openssl]=openssl [chromium]=chromium [bird]=bird2 [iperf3]=iperf3 [wrk]=wrk [haproxy]=haproxy [nft]=nftables [ethtool]=ethtool [ipvsadm]=ipvsadm [node_exporter]=prometheus-node-exporter [systemd-analyze]=systemd [keepalived]=keepalived)
have() {
  case "$1" in
    bpf_helpers) [ -f /usr/include/bpf/bpf_helpers.h ] ;;
    node_exporter) command -v prometheus-node-exporter >/dev/null 2>&1 ;;
    # The interpreter test/support/scapy.ts runs: Debian's, for which python3-scapy installs.
    scapy) /usr/bin/python3.11 -c 'import scapy.layers.inet6' >/dev/null 2>&1 ;;
    bpftool | nft | ethtool | haproxy | dnsmasq | bird | ipvsadm) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] ;;
    # The samples are the point: a keepalived without its doc directory (path-excluded) is not enough.
    keepalived) [ -x /usr/sbin/keepalived ] && [ -d /usr/share/doc/keepalived/samples ] ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}
missing=()
for cmd in "${!need[@]}"; do
  have "$cmd" || missing+=("$cmd")
done
status=0
pkgs=()
for m in "${missing[@]}"; do pkgs+=("${pkg[$m]}"); done
if [ ${#missing[@]} -eq 0 ]; then
  :
elif [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "fullnat: missing system tools (tests that need them will be skipped):" >&2
  for m in "${missing[@]}"; do echo "  - ${need[$m]}" >&2; done
  echo "  install with: apt-get install ${pkgs[*]}" >&2
  status=$required
else
  echo "fullnat: installing Debian packages the tests and lab need:" >&2
  for m in "${missing[@]}"; do echo "  - ${need[$m]}" >&2; done
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || echo "fullnat: apt-get update failed; trying the install anyway" >&2
  if ! apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2; then
    echo "fullnat: apt-get install failed; tests that need ${pkgs[*]} will be skipped" >&2
    status=$required
  fi
  still=()
  for m in "${missing[@]}"; do have "$m" || still+=("${pkg[$m]}"); done
  if [ ${#still[@]} -gt 0 ]; then
    echo "fullnat: still missing after the install: ${still[*]}" >&2
    status=$required
  fi
fi
# The eBPF object is built at npm install; build it now if its compiler only just arrived.
if [ ! -f build/bpf/toa.bpf.o ] && [ -f scripts/build-bpf.js ]; then
  node scripts/build-bpf.js >&2 || status=1
fi
[ "$status" = 1 ] && echo "fullnat: FULLNAT_REQUIRE_ALL=1 and the above is missing: failing" >&2
exit "$status"
