#!/bin/sh
# Starts pgbouncer (deploy/pgbouncer/pgbouncer.ini) with the app role's password from the environment, written to
# a file only this user reads, in pgbouncer's userlist format (a double quote inside is written twice).
set -eu
: "${APP_DB_PASSWORD:?set APP_DB_PASSWORD}"
umask 077
password=$(printf '%s' "$APP_DB_PASSWORD" | sed 's/"/""/g')
printf '"%s" "%s"\n' "${APP_DB_USER:-shop_app}" "$password" > /run/pgbouncer/userlist.txt
exec pgbouncer /etc/pgbouncer/pgbouncer.ini
