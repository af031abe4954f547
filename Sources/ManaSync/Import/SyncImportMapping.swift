/// The mapping of an original `public.sync_changes` row to a `sync.changes` row, as SQL
/// expressions over the original's columns (spec §3, "mana-sync → sync"). Kept in one place
/// so the import and its checks agree.
enum SyncImportMapping {
    /// insert: the client's `data`, JSON `null` as SQL NULL; update and delete: NULL.
    static let data = "CASE WHEN op = 'insert' THEN nullif(data, 'null'::jsonb) END"

    /// update: for each key of `field_timestamps` present in `data`, `{"value", "updatedAt"}`,
    /// exactly as the original served it (`{}` for an update without fields).
    static let fields = """
        CASE WHEN op = 'update' THEN (
            SELECT coalesce(jsonb_object_agg(t.key, jsonb_build_object('value', data -> t.key, 'updatedAt', t.value)), '{}'::jsonb)
            FROM jsonb_each(CASE WHEN jsonb_typeof(field_timestamps) = 'object' THEN field_timestamps ELSE '{}'::jsonb END) t
            WHERE jsonb_typeof(data) = 'object' AND data ? t.key) END
        """

    /// delete: `data.deletedAt` when it is a JSON string.
    static let deletedAt = "CASE WHEN op = 'delete' AND jsonb_typeof(data -> 'deletedAt') = 'string' THEN data ->> 'deletedAt' END"

    /// A later original's `space_id` column, as `{"spaceId": …}`.
    static let extra = "CASE WHEN space_id IS NOT NULL THEN jsonb_build_object('spaceId', space_id) END"

    /// App ids the new API refuses (it answers 400 for them): their rows are imported but unreachable.
    static let rejectedAppID = "app_id !~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'"

    /// RFC 3339 as clients send it (what the original stored without checking).
    static let rfc3339 = "'^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$'"
}
