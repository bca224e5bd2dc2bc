#!/bin/sh
# Run by the postgres image on the first start of an empty data directory (/docker-entrypoint-initdb.d): a role
# for the streaming replica (docker-compose.prod.yml's db-replica) and the one pg_hba.conf line that lets it
# connect for replication, with a password, from the compose network.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v password="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'password';
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
