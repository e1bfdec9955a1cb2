#!/usr/bin/env bash
# Generate the next Alembic migration of one service from its models:
#   scripts/new-migration.sh identity "add widgets"
# It builds a scratch SQLite database at the current head, then autogenerates
# the difference. Review the generated file before committing it.
set -euo pipefail
cd "$(dirname "$0")/.."
service=${1:?service name, e.g. identity}
message=${2:?a short message}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/alembic.ini" <<INI
[alembic]
script_location = onestack.$service:migrations
sqlalchemy.url = sqlite:///$tmp/scratch.db
INI
${ALEMBIC:-.venv/bin/alembic} -c "$tmp/alembic.ini" upgrade head
${ALEMBIC:-.venv/bin/alembic} -c "$tmp/alembic.ini" revision --autogenerate -m "$message"
