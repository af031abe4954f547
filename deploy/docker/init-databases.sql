-- The compose PostgreSQL creates mana_sync itself; mana-credits gets its own database.
CREATE DATABASE mana_credits OWNER mana;
