#!/bin/sh
# The benchmark's packages: the project's own (deploy/dev/install-deps.sh, which
# never lets a system Dovecot or Redis start) plus the peers and the plotter.
set -eu
EXTRA_PACKAGES="perdition gnuplot-nox" exec "$(dirname "$0")/../deploy/dev/install-deps.sh"
