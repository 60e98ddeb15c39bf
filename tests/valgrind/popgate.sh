#!/bin/sh
# Runs popgate under valgrind memcheck for `make test-valgrind`: any memory
# error or leak makes popgate exit 99, which the test bed reports as a failure
# (Popgate.stop() requires exit status 0).
exec valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --track-fds=no \
    --log-file="${POPGATE_VALGRIND_LOG:-/dev/stderr}" \
    "$(dirname "$0")/../../build/valgrind/popgate" "$@"
