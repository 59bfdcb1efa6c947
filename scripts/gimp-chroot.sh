#!/usr/bin/env bash
# A Debian trixie chroot with GIMP 3 (gimp-console-3.0 and its Python), for the real-GIMP tests.
#
#   scripts/gimp-chroot.sh ensure          build the tarball once (~/.cache/aiedit), unpack it,
#                                          print the chroot's root directory
#   scripts/gimp-chroot.sh root            print the chroot's root directory (no build)
#   scripts/gimp-chroot.sh run [--bind HOSTDIR:CHROOTDIR]... -- CMD ARGS...
#                                          run CMD inside the chroot
#
# How `run` works: `unshare --mount` gives the command a private mount namespace, in which
# /proc is mounted fresh, /dev and /dev/shm are bind-mounted from the host and each --bind
# directory is bind-mounted; then `chroot` enters the root. The mounts vanish with the
# namespace, so nothing is left mounted on the host. The network namespace is the host's, so
# a server listening on 127.0.0.1 outside is reachable from inside.
#
# The Debian mirror is read at run time from /etc/apt/sources.list.d/ (the host's own source).
set -euo pipefail

PACKAGES=(gimp python3-gi gir1.2-gimp-3.0)
SUITE=trixie
CACHE="${AIEDIT_CACHE:-$HOME/.cache/aiedit}"
KEY=$(printf '%s\n' "$SUITE" "${PACKAGES[@]}" | sha256sum | cut -c1-12)
TARBALL="$CACHE/gimp-chroot-$SUITE-$KEY.tar"
ROOT="$CACHE/gimp-chroot-$SUITE-$KEY"

die() { echo "gimp-chroot: $*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (chroot, mount namespaces)"
}

debian_mirror() {
  local files=(/etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list)
  local uri
  uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "${files[@]}" 2>/dev/null || true)
  if [ -z "$uri" ]; then
    uri=$(awk '/^deb / && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' \
      "${files[@]}" 2>/dev/null || true)
  fi
  [ -n "$uri" ] || die "no Debian mirror found in /etc/apt/sources.list.d/"
  echo "$uri"
}

build_tarball() {
  command -v mmdebstrap >/dev/null || die "mmdebstrap is missing: run scripts/system-deps.sh"
  mkdir -p "$CACHE"
  local mirror include
  mirror=$(debian_mirror)
  include=$(IFS=,; echo "${PACKAGES[*]}")
  echo "gimp-chroot: building $SUITE chroot with $include from $mirror (a few minutes)" >&2
  mmdebstrap --variant=minbase --include="$include" --components=main \
    "$SUITE" "$CACHE/building-$KEY.tar" "$mirror" >&2
  mv "$CACHE/building-$KEY.tar" "$TARBALL"
}

unpack() {
  rm -rf "$ROOT.part"
  mkdir -p "$ROOT.part"
  tar -xf "$TARBALL" -C "$ROOT.part"
  mv "$ROOT.part" "$ROOT"
}

ensure() {
  need_root
  mkdir -p "$CACHE"
  exec 9>"$CACHE/gimp-chroot.lock"   # test processes side by side build and unpack it once
  flock 9
  if [ ! -x "$ROOT/usr/bin/gimp-console-3.0" ]; then
    [ -f "$TARBALL" ] || build_tarball
    unpack
  fi
  [ -x "$ROOT/usr/bin/gimp-console-3.0" ] || die "gimp-console-3.0 missing in $ROOT"
  echo "$ROOT"
}

run_inside() {
  need_root
  [ -x "$ROOT/usr/bin/gimp-console-3.0" ] || die "no chroot at $ROOT: run '$0 ensure' first"
  local binds=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --bind) binds+=("$2"); shift 2 ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  [ $# -gt 0 ] || die "run: no command given"
  local setup="set -e; mount -t proc proc '$ROOT/proc'; mount --rbind /dev '$ROOT/dev';"
  local pair host inside
  for pair in "${binds[@]}"; do
    host=${pair%%:*}
    inside=${pair#*:}
    mkdir -p "$ROOT$inside"
    setup+=" mount --bind '$host' '$ROOT$inside';"
  done
  unshare --mount --propagation private -- bash -c \
    "$setup exec chroot '$ROOT' /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \"\$@\"" \
    inside "$@"
}

case "${1:-}" in
  ensure) ensure ;;
  root) echo "$ROOT" ;;
  run) shift; run_inside "$@" ;;
  *) die "usage: $0 ensure | root | run [--bind HOST:INSIDE]... -- CMD ARGS..." ;;
esac
