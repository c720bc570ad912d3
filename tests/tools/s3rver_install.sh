#!/usr/bin/env bash
# Install s3rver (an S3-compatible server, from the npm registry) under DIR for
# the object-store tests, once. Never fails: without Node/npm or the registry
# the tests that need s3rver skip and say why.
set -u
dir=${1:?usage: s3rver_install.sh DIR}
version=3.7.1
if [ -x "$dir/node_modules/.bin/s3rver" ]; then
  exit 0
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "s3rver_install: node/npm not found: the object-store tests will skip"
  exit 0
fi
mkdir -p "$dir"
if ! npm install --no-audit --no-fund --silent --prefix "$dir" "s3rver@$version"; then
  echo "s3rver_install: npm install s3rver@$version failed: the object-store tests will skip"
fi
exit 0
