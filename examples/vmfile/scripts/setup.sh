#!/bin/sh
# Provision step 2 of examples/vmfile/VMFile.kdl: install the file step 1 uploaded.
set -eu
sudo install -m 0644 /tmp/motd /etc/motd
