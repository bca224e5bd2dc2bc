#!/bin/sh
# Run by the postgres image on the first start of an empty data directory (/docker-entrypoint-initdb.d):
# makes the app's least-privilege role (deploy/postgres/app-role.sql).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v owner="$POSTGRES_USER" -v app_role="${APP_DB_USER:-shop_app}" -v app_password="$APP_DB_PASSWORD" \
  -f /docker-entrypoint-initdb.d/app-role.sql.in
