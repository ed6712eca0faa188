#!/bin/sh
# Runs once in the web VM on its first `skiff up` (and on `skiff provision web`).
# The cache is healthy before web starts (depends_on: service_healthy), so
# this can talk to it over the private network: socat comes with the base layer.
set -eu
reply=$(printf 'PING\r\n' | socat -t 2 - TCP:10.90.0.10:6379)
echo "cache at 10.90.0.10 says: $reply"
