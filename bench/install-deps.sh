#!/bin/sh
# The benchmark's packages: the project's own (deploy/dev/install-deps.sh, which
# never lets a system Dovecot or Redis start) plus the peers, the plotter and perf (the profiles of a full run).
set -eu
EXTRA_PACKAGES="perdition gnuplot-nox linux-perf" exec "$(dirname "$0")/../deploy/dev/install-deps.sh"
