-- The schemas of mana-credits: the ledger and its neighbours in `credits`, gift codes in `gifts`.
CREATE SCHEMA IF NOT EXISTS credits;
CREATE SCHEMA IF NOT EXISTS gifts;
