#!/bin/sh
# Install the Debian packages the embedded farm runs on, if any is missing.
# With --test, also those only the test suite needs (a farm never runs them).
set -eu
missing=""
command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
command -v docker-registry >/dev/null 2>&1 || missing="$missing docker-registry"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
command -v git >/dev/null 2>&1 || missing="$missing git"
if [ "${1:-}" = "--test" ]; then
    # The browser tests of the farm's pages drive Debian's Chromium through its WebDriver.
    command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
    command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
    # The client tests run BinderHub's npm client and the Binder CLI under Node.
    command -v node >/dev/null 2>&1 || missing="$missing nodejs"
    command -v npm >/dev/null 2>&1 || missing="$missing npm"
    # deploy/docker-compose.yml is checked by docker-compose itself.
    command -v docker-compose >/dev/null 2>&1 || missing="$missing docker-compose"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "missing packages:$missing; install them as root (apt-get install$missing)" >&2
    exit 1
fi
echo "installing:$missing"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
# The packages just installed enable system services; the farm starts its own
# processes. Only those: an engine that ran before (a Docker host's) keeps running.
for package in $missing; do
    case "$package" in
        docker.io) service=docker ;;
        docker-registry|redis-server) service=$package ;;
        *) continue ;;
    esac
    (systemctl disable --now "$service" || service "$service" stop) >/dev/null 2>&1 || true
done
