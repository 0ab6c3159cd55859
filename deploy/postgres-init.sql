-- One database and one role per service: each owns its data, logs in with its own password, and
-- cannot connect to another service's database. Run once by the postgres image on an empty data
-- directory (docker-entrypoint-initdb.d), as the superuser; the passwords come from the container's
-- environment (psql's \getenv, PostgreSQL 15 and later). A password left unset fails the start.
\set ON_ERROR_STOP on
\getenv registry_password REGISTRY_DB_PASSWORD
\getenv inventory_password INVENTORY_DB_PASSWORD
\getenv sourcing_password SOURCING_DB_PASSWORD
\getenv reporting_password REPORTING_DB_PASSWORD
\getenv notifications_password NOTIFICATIONS_DB_PASSWORD

CREATE ROLE registry LOGIN PASSWORD :'registry_password';
CREATE ROLE inventory LOGIN PASSWORD :'inventory_password';
CREATE ROLE sourcing LOGIN PASSWORD :'sourcing_password';
CREATE ROLE reporting LOGIN PASSWORD :'reporting_password';
CREATE ROLE notifications LOGIN PASSWORD :'notifications_password';

-- The owner of a database owns its public schema (pg_database_owner, PostgreSQL 15+): migrations
-- create their tables there; no one else may connect.
CREATE DATABASE registry OWNER registry;
CREATE DATABASE inventory OWNER inventory;
CREATE DATABASE sourcing OWNER sourcing;
CREATE DATABASE reporting OWNER reporting;
CREATE DATABASE notifications OWNER notifications;
REVOKE ALL ON DATABASE registry, inventory, sourcing, reporting, notifications FROM PUBLIC;
