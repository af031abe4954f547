-- Forward compatibility with newer clients: every stored change has a stable id of its own
-- (served as `eventId`), and keys of a change beyond table/id/op/data/fields/deletedAt
-- (`spaceId`, `actor`, `origin`, `schemaVersion`, ...) are kept verbatim in `extra`.
ALTER TABLE sync.changes
    ADD COLUMN event_id uuid NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN extra jsonb;
