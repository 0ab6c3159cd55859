-- One database per service: each owns its data and no service reads another's tables.
CREATE DATABASE registry;
CREATE DATABASE inventory;
CREATE DATABASE sourcing;
CREATE DATABASE reporting;
CREATE DATABASE notifications;
