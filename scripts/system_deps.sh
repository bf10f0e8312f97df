#!/usr/bin/env bash
# Installs the Debian packages the project needs when they are missing and we may
# (root with apt-get); otherwise says what to install. Usage: system_deps.sh demo|test
set -euo pipefail

purpose=${1:-demo}
missing=()
[ -f /usr/share/java/mariadb-java-client.jar ] || [ -n "${JDBC_JAR:-}" ] || missing+=(libmariadb-java)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
if [ "$purpose" = test ]; then
  command -v plantuml >/dev/null 2>&1 || missing+=(plantuml)
  command -v dot >/dev/null 2>&1 || missing+=(graphviz)
  # The dashboard test renders the page in headless Chromium.
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  # The Prometheus alert rules are checked with promtool.
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "warning: missing system packages: ${missing[*]}" >&2
  echo "         install them with: sudo apt-get install ${missing[*]}" >&2
  # The ingestion stage runs without them; the tests that render diagrams need plantuml.
  [ "$purpose" = test ] && exit 1
fi
exit 0
