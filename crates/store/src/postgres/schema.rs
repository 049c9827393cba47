//! The schema and its migration.
//!
//! One table, keyed as in docs/design.md#data-model: the partition
//! `(account_id, profile_id)` leads the primary key, so a profile's rows are
//! one index range and continue-watching is one range read. The SQL is plain
//! PostgreSQL (no extensions) so Postgres-wire distributed SQL can run it.

/// Serializes concurrent migrations of several nodes starting at once.
const MIGRATION_LOCK: i64 = 0x706c_6179_6d61_726b; // "playmark"

/// Creates or upgrades the schema. Idempotent, and safe with many nodes
/// starting together: they queue on one advisory transaction lock.
pub(crate) async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
    let txn = client.transaction().await?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    txn.batch_execute(
        r#"
        CREATE TABLE IF NOT EXISTS playmark_progress (
            account_id  text    NOT NULL,
            profile_id  text    NOT NULL,
            video_id    text    NOT NULL,
            deleted     boolean NOT NULL,
            updated_at  bigint  NOT NULL,
            device_id   text    NOT NULL,
            position_ms bigint  NOT NULL,
            duration_ms bigint,
            touched_at  bigint  NOT NULL,
            PRIMARY KEY (account_id, profile_id, video_id)
        );
        CREATE INDEX IF NOT EXISTS playmark_progress_touched_at ON playmark_progress (touched_at);
        ALTER TABLE playmark_progress ADD COLUMN IF NOT EXISTS hidden boolean NOT NULL DEFAULT false;
        CREATE TABLE IF NOT EXISTS playmark_heartbeat (id integer PRIMARY KEY, at timestamptz NOT NULL);
        INSERT INTO playmark_heartbeat VALUES (1, now()) ON CONFLICT (id) DO NOTHING;
        "#,
    )
    .await?;
    txn.commit().await
}

/// The merge rule of `playmark_core::Entry`'s order, as a SQL row value:
/// `(updated_at, kind, device_id, position, duration)`, where a deletion
/// outranks a checkpoint at the same millisecond, ids compare byte-wise
/// (`COLLATE "C"`, like Rust strings), and a missing duration sorts first.
/// Tombstones store `device_id = ''`, `position_ms = 0`, no duration, so two
/// tombstones at the same time compare equal.
macro_rules! order_of {
    ($t:literal) => {
        concat!(
            "(",
            $t,
            ".updated_at, CASE WHEN ",
            $t,
            ".deleted THEN 1 ELSE 0 END, ",
            $t,
            ".device_id COLLATE \"C\", ",
            $t,
            ".position_ms, COALESCE(",
            $t,
            ".duration_ms, -1))"
        )
    };
}

/// Writes a batch of checkpoints (one row per key) where each is newer than
/// what stands and not refused by its stale-device guard, in one statement.
/// Returns the keys that were applied. `$9..$13` list the guarded rows
/// (account, profile, video, resumed_from, max regression); the guard is
/// evaluated inside `ON CONFLICT ... WHERE`, against the locked current row,
/// so it is as atomic as the merge rule (`playmark_core::StaleGuard`).
pub(crate) const UPSERT_BATCH: &str = concat!(
    "INSERT INTO playmark_progress AS t ",
    "(account_id, profile_id, video_id, deleted, updated_at, device_id, position_ms, duration_ms, touched_at, hidden) ",
    "SELECT a, p, v, false, u, d, pos, dur, tt, false FROM unnest(",
    "$1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[]",
    ") AS i(a, p, v, u, d, pos, dur, tt) ",
    "ON CONFLICT (account_id, profile_id, video_id) DO UPDATE SET ",
    "deleted = false, updated_at = excluded.updated_at, device_id = excluded.device_id, ",
    "position_ms = excluded.position_ms, duration_ms = excluded.duration_ms, touched_at = excluded.touched_at, ",
    "hidden = false ",
    "WHERE ",
    order_of!("excluded"),
    " > ",
    order_of!("t"),
    " AND NOT EXISTS (SELECT 1 FROM unnest($9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[]) ",
    "AS g(a, p, v, rf, ms) WHERE g.a = excluded.account_id AND g.p = excluded.profile_id AND g.v = excluded.video_id ",
    "AND NOT t.deleted AND t.updated_at > g.rf AND t.device_id <> excluded.device_id ",
    "AND t.position_ms - excluded.position_ms > g.ms)",
    " RETURNING account_id, profile_id, video_id"
);

/// The standing rows of a set of keys.
pub(crate) const GET_MANY: &str = concat!(
    "SELECT t.account_id, t.profile_id, t.video_id, t.deleted, t.updated_at, t.device_id, t.position_ms, t.duration_ms, t.hidden ",
    "FROM playmark_progress t JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(a, p, v) ",
    "ON t.account_id = k.a AND t.profile_id = k.p AND t.video_id = k.v"
);

/// One row.
pub(crate) const GET: &str = "SELECT deleted, updated_at, device_id, position_ms, duration_ms, hidden \
     FROM playmark_progress WHERE account_id = $1 AND profile_id = $2 AND video_id = $3";

/// A profile's live rows: one range of the primary key.
pub(crate) const LIST_PROFILE: &str = "SELECT video_id, updated_at, device_id, position_ms, duration_ms, hidden \
     FROM playmark_progress WHERE account_id = $1 AND profile_id = $2 AND NOT deleted";

/// Replaces what stands with a tombstone placed after it (see
/// `Entry::tombstone`); a no-op when a tombstone at or after `$4` stands.
pub(crate) const DELETE: &str = "INSERT INTO playmark_progress AS t \
     (account_id, profile_id, video_id, deleted, updated_at, device_id, position_ms, duration_ms, touched_at) \
     VALUES ($1, $2, $3, true, $4, '', 0, NULL, $4) \
     ON CONFLICT (account_id, profile_id, video_id) DO UPDATE SET \
     deleted = true, \
     updated_at = CASE WHEN t.deleted THEN GREATEST(t.updated_at, excluded.updated_at) \
                       ELSE GREATEST(excluded.updated_at, t.updated_at + 1) END, \
     device_id = '', position_ms = 0, duration_ms = NULL, touched_at = excluded.touched_at, hidden = false \
     WHERE NOT (t.deleted AND t.updated_at >= excluded.updated_at) \
     RETURNING updated_at";

/// Deletes up to `$2` rows untouched since `$1` and returns their keys;
/// index-friendly and portable (no `ctid`, no `DELETE ... LIMIT`). The outer
/// `touched_at` test matters: under READ COMMITTED a row written while this
/// runs is re-checked against the outer condition only, and a fresh
/// checkpoint must survive.
pub(crate) const EXPIRE_BATCH: &str = "DELETE FROM playmark_progress WHERE (account_id, profile_id, video_id) IN \
     (SELECT account_id, profile_id, video_id FROM playmark_progress WHERE touched_at < $1 LIMIT $2) \
     AND touched_at < $1 RETURNING account_id, profile_id, video_id";

/// Hides a live row from continue-watching; its progress is untouched.
/// Returns the row's checkpoint.
pub(crate) const HIDE: &str = "UPDATE playmark_progress SET hidden = true \
     WHERE account_id = $1 AND profile_id = $2 AND video_id = $3 AND NOT deleted \
     RETURNING updated_at, device_id, position_ms, duration_ms";

/// The readiness probe: a write, so a server that answers but cannot write
/// (a replica, a full disk) is reported.
pub(crate) const HEARTBEAT: &str = "UPDATE playmark_heartbeat SET at = now() WHERE id = 1";
