#!/usr/bin/env bash
# Install the nchan reference (issue 5): Debian's nginx with the nchan module. Needs root (apt-get);
# the server itself is then run unprivileged by bench/nchan.py with its own prefix and port.
set -euo pipefail
# nginx checks its compiled-in temp folders at start even when the config names others; the packaged
# service creates them on its first start, which never happens here. They must exist for an
# unprivileged nginx (mkdir of an existing folder is fine, creating one under /var/lib is not).
make_temp_dirs() { [ "$(id -u)" = 0 ] && mkdir -p /var/lib/nginx/{body,proxy,fastcgi,scgi,uwsgi} || true; }
if [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] && command -v nginx >/dev/null; then
  make_temp_dirs
  echo "nchan already installed: $(nginx -v 2>&1)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "run as root (apt-get install nginx libnginx-mod-nchan)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends nginx libnginx-mod-nchan
# Debian enables the module for the system nginx; we only load it from our own config, and we do not
# want the packaged service running on port 80 during a benchmark.
if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
  systemctl stop nginx || true
fi
make_temp_dirs
ls /usr/lib/nginx/modules/ngx_nchan_module.so
