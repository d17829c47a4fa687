#!/usr/bin/env bash
# kill -9 in a loop while clients publish (issue 18): each round starts the relay on the same
# DB, three clients publish with 16 EVENTs in flight each, the relay is frozen (SIGSTOP) and
# thawed (SIGCONT), then killed with SIGKILL after a varying number of acknowledgements. At
# the end every event answered `OK true` in any round must be in the DB. The last line is
#   kill loop: <rounds> rounds, <n> acknowledged, lost 0 (<seconds> s)
# The rounds are tests/crash.rs (cargo test runs 3 of them); this runs ROUNDS (default 100)
# against the release build. Loopback only.
#
#   scripts/kill-loop.sh            # 100 rounds
#   ROUNDS=500 scripts/kill-loop.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-100}
WOK_KILL_ROUNDS=$ROUNDS cargo test --release --locked --test crash -- --nocapture 2>&1 \
  | grep -E '^(kill loop|test result)|panicked|lost'
