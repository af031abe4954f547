-- mana-sync keeps its tables in the `sync` schema of the mana_sync database.
CREATE SCHEMA IF NOT EXISTS sync;
