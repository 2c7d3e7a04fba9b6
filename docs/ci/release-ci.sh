#!/usr/bin/env bash
# The steps of a CI pipeline for an app deployed with `release`, one argument per job; github-actions.yml and
# gitlab-ci.yml call it, and `make test` runs it as written against local AWS (tests/tests/cli.rs).
#
#   release-ci.sh bake      build, test and bake the commit into an AMI (a no-op when that bake exists)
#   release-ci.sh staging   promote it to staging (in place), waiting in the release queue for up to 30 minutes
#   release-ci.sh prod      promote it to prod's idle cluster, then switch the live name to that cluster
#
# Needs `release` and `jq` on PATH, AWS credentials (an OIDC role in CI), and the commit in $SHA (default: HEAD).
# Every command prints one JSON document (`--output json`), kept as <job>.json for the CI's artifacts; its exit
# code is release's own (README "Exit codes": 4 refused, 5 lock held, 8 deploy failed and rolled back, ...).
set -euo pipefail

sha="${SHA:-$(git rev-parse HEAD)}"
wait="${RELEASE_CI_WAIT:-30m}"

# Runs `release ARGS --output json` and keeps the document in $out; when it fails (release has said why on stderr
# already), names the command and fails the job with release's exit code.
run() {
  local out="$1"; shift
  local rc=0
  release "$@" --output json >"$out" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "release-ci.sh: \`release $*\` failed with exit code $rc (README \"Exit codes\"); its JSON document is in $out" >&2
    exit "$rc"
  fi
}

case "${1:-}" in
  bake)
    run bake.json bake "$sha"
    echo "baked $(jq -r .commit bake.json) into $(jq -r .ami bake.json) (reused: $(jq -r .reused bake.json))"
    ;;
  staging)
    run staging.json promote "$sha" --env staging --wait "$wait" --yes
    echo "staging runs $(jq -r .commit staging.json) on $(jq -r .cluster staging.json)"
    ;;
  prod)
    run prod-promote.json promote "$sha" --env prod --wait "$wait" --yes
    cluster="$(jq -r .cluster prod-promote.json)"
    run prod-switch.json switch "$cluster" --wait "$wait" --yes
    echo "prod serves $sha from $cluster"
    ;;
  *)
    echo "usage: release-ci.sh bake|staging|prod" >&2
    exit 2
    ;;
esac
