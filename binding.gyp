# Native addons (Linux only). Built by scripts/build-native.js with the local
# Node headers (nodedir); nothing is downloaded. C only, plain N-API.
#   fullnat_tun       the TUN device (fullnat run)
#   fullnat_peercred  SO_PEERCRED for the control socket
#   fullnat_notify    systemd readiness (sd_notify) for fullnat run
#   fullnat_toa       the eBPF receiver's TOA of one socket (toaPeer, fullnat/realserver)
{
  "targets": [
    {
      "target_name": "fullnat_tun",
      "sources": ["native/tun.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes"],
      "cflags!": ["-Wno-unused-parameter"],
      "cflags_c!": ["-Wno-unused-parameter"]
    },
    {
      "target_name": "fullnat_peercred",
      "sources": ["native/peercred.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes"],
      "cflags!": ["-Wno-unused-parameter"],
      "cflags_c!": ["-Wno-unused-parameter"]
    },
    {
      "target_name": "fullnat_notify",
      "sources": ["native/sd-notify.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes"],
      "cflags!": ["-Wno-unused-parameter"],
      "cflags_c!": ["-Wno-unused-parameter"]
    },
    {
      "target_name": "fullnat_toa",
      "sources": ["native/toa-peer.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes"],
      "cflags!": ["-Wno-unused-parameter"],
      "cflags_c!": ["-Wno-unused-parameter"]
    }
  ]
}
