#!/usr/bin/env bash
# Build a stand-in for the image python:3.11-slim-bookworm as a root filesystem tarball, for
# machines that reach Debian's mirror but no image registry:
#   tests/container/base_image.sh OUT.tar
# Debian bookworm's own Python is 3.11. Needs root and debootstrap. The container test caches
# OUT.tar keyed on a hash of this file and of the host's local CAs (tests/container/podman.py),
# so a change to either builds it again.
set -euo pipefail
out=$1
packages="python3 python3-pip python3-venv ca-certificates"

# The Debian mirror apt already uses (one-line or deb822 sources), else Debian's own.
mirror=$(
  { grep -hsE '^deb +(\[[^]]*\] +)?https?://' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
      | grep -E ' bookworm( |$)' | sed -E 's/^deb +(\[[^]]*\] +)?//' | awk '{print $1}'
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      awk '/^URIs:/{u=$2} /^Suites:/ && / bookworm( |$)/{print u}' "$f"
    done
  } | grep -v -- '-security' | head -n1
)
mirror=${mirror:-http://deb.debian.org/debian}

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/python-rootfs.XXXXXX")
log=$rootfs.log
cleanup() {
  umount -l "$rootfs/proc" 2>/dev/null || true
  rm -rf --one-file-system "$rootfs" "$log"
}
trap cleanup EXIT
trap 'echo "base image: failed; the end of its log:"; tail -n 30 "$log"' ERR
chmod 755 "$rootfs"  # apt's download user reads it

echo "base image: debootstrap --variant=minbase bookworm from $mirror"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$log" 2>&1

# Package indexes may sit behind a proxy with a CA of its own: trust what the host trusts.
if compgen -G "/usr/local/share/ca-certificates/*" >/dev/null; then
  mkdir -p "$rootfs/usr/local/share/ca-certificates"
  cp -r /usr/local/share/ca-certificates/. "$rootfs/usr/local/share/ca-certificates/"
fi
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
mount -t proc proc "$rootfs/proc"
chroot "$rootfs" /bin/sh -ec "
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends $packages
  update-ca-certificates
  apt-get clean
  rm -rf /var/lib/apt/lists/*
  ln -sf /usr/bin/python3 /usr/local/bin/python
  ln -sf /usr/bin/pip3 /usr/local/bin/pip
  rm -f /usr/lib/python3.*/EXTERNALLY-MANAGED
  printf '[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n' > /etc/pip.conf
" >>"$log" 2>&1
umount -l "$rootfs/proc"
: > "$rootfs/etc/resolv.conf"
echo "base image: $(chroot "$rootfs" python --version), $(du -sh "$rootfs" | cut -f1)"
tar -C "$rootfs" --numeric-owner -cf "$out.part" .
mv "$out.part" "$out"
