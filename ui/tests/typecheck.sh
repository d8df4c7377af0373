#!/usr/bin/env bash
# Type-checks the web UI's modules: plain JavaScript with `// @ts-check`
# and JSDoc types, checked by TypeScript against ui/jsconfig.json (no
# output files). TypeScript comes from npm into ui/tests/node_modules
# (not saved in package.json: nothing ships it) when it is missing.
#
#   ui/tests/typecheck.sh
#
# The last line is `typecheck: ok`; the exit code is non-zero on errors.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
UI=$(dirname "$HERE")
TSC="$HERE/node_modules/.bin/tsc"
# Pinned: a new TypeScript may check more, which must be a deliberate change.

if [ ! -x "$TSC" ]; then
  (cd "$HERE" && npm install --no-save --no-audit --no-fund typescript@5.9 >/dev/null)
fi

# Every module opts in to checking; one that does not is an error too.
missing=0
for module in "$UI"/*.js; do
  if [ "$(head -n 1 "$module")" != "// @ts-check" ]; then
    echo "typecheck: $(basename "$module") does not start with // @ts-check" >&2
    missing=1
  fi
done

echo "typecheck: $("$TSC" --version) on $(cd "$UI" && ls ./*.js | wc -l) modules"
if ! "$TSC" --noEmit --allowJs --checkJs -p "$UI/jsconfig.json"; then
  echo "typecheck: failed"
  exit 1
fi
if [ "$missing" -ne 0 ]; then
  echo "typecheck: failed"
  exit 1
fi
echo "typecheck: ok"
