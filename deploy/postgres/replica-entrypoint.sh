#!/bin/sh
# The streaming replica (docker-compose.prod.yml's db-replica). On an empty data directory: a base backup of the
# primary over the replication role, with a replication slot so the primary keeps the WAL the replica has yet to
# fetch (bounded by the primary's max_slot_wal_keep_size), and --write-recovery-conf (standby.signal and
# primary_conninfo). Then PostgreSQL as a hot standby: read-only, replaying the primary's WAL as it streams.
set -eu
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 0700 "$PGDATA"
  exec gosu postgres "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready --host=db --port=5432 --quiet; do sleep 1; done
  PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup --host=db --port=5432 --username=replicator \
    --pgdata="$PGDATA" --write-recovery-conf --wal-method=stream --checkpoint=fast \
    --create-slot --slot=db_replica
fi
exec postgres -c hot_standby=on
