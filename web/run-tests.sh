#!/usr/bin/env bash
# Builds the web client and runs its browser test (tests/e2e.spec.mjs) in headless Chromium.
#
#   SOULCHAT_WEB_URL=http://127.0.0.1:8080 web/run-tests.sh   # a gateway that serves web/dist
#   SOULCHAT_API_URL=http://127.0.0.1:18099 web/run-tests.sh  # a gateway without the files: served
#                                                              # by `vite preview`, proxying /api and /ws
# The gateway must allow the page's origin on /ws (SOULCHAT_CORS_ORIGINS), e.g.
# http://127.0.0.1:4173 for the preview server.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update && $sudo apt-get install -y chromium
fi

npm ci --no-audit --no-fund
npm run build

preview_pid=""
cleanup() { [ -n "$preview_pid" ] && kill "$preview_pid" 2>/dev/null || true; }
trap cleanup EXIT

if [ -z "${SOULCHAT_WEB_URL:-}" ]; then
  if [ -n "${SOULCHAT_API_URL:-}" ]; then
    npx vite preview >test-preview.log 2>&1 &
    preview_pid=$!
    export SOULCHAT_WEB_URL=http://127.0.0.1:4173
    for _ in $(seq 1 50); do curl -fsS "$SOULCHAT_WEB_URL/" >/dev/null 2>&1 && break; sleep 0.2; done
  else
    export SOULCHAT_WEB_URL=http://127.0.0.1:8080
  fi
fi

echo "web client test against $SOULCHAT_WEB_URL"
node --test --test-reporter=spec tests/e2e.spec.mjs
