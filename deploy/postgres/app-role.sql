-- The application's own PostgreSQL role: it reads and writes rows, and can change no schema.
-- Migrations run as the database's owner; the app connects as this role (docker-compose.prod.yml).
--
-- psql variables: owner (the role that owns the database and runs the migrations), app_role, app_password.
-- Run once, as a superuser or the owner, before or after the first migration:
--   psql -v owner=shop -v app_role=shop_app -v app_password=... -d shop -f app-role.sql

SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'app_role', :'app_password')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_role') \gexec

SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'app_role') \gexec
GRANT USAGE ON SCHEMA public TO :"app_role";
REVOKE CREATE ON SCHEMA public FROM :"app_role";

-- the tables and sequences there now ...
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_role";
-- ... and every one the owner's migrations create from now on
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app_role";
