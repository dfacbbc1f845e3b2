#!/usr/bin/env bash
# cargo deny, offline: advisories come from the team's RustSec snapshot
# (../shared/advisory-db.bundle) when there is one; online machines fetch as usual.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=../shared/advisory-db.bundle
if [ -f "$bundle" ]; then
  db=target/advisory-dbs/advisory-db-3157b0e258782691
  [ -d "$db" ] || { mkdir -p target/advisory-dbs && git clone -q "$bundle" "$db"; }
  exec cargo deny --offline check "$@"
fi
exec cargo deny check "$@"
