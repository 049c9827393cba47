//! The schema and its migration.
//!
//! - `playmark_progress`, keyed as in docs/design.md#data-model: the
//!   partition `(account_id, profile_id)` leads the primary key, so a
//!   profile's rows are one index range.
//! - `playmark_progress_standalone` and `playmark_progress_episodes`,
//!   partial indexes of the titles in progress (live, not hidden, not
//!   finished) without and with a series, by `updated_at DESC, video_id`:
//!   continue-watching reads only as far as its limit, whatever the
//!   profile's size (the whole row merges the two; the row grouped by
//!   series reads the standalone one). A row is in at most one of them,
//!   so a write maintains one index entry, as before the split.
//! - `playmark_progress_history`, a partial index of the finished titles
//!   by `finished_at DESC, video_id`: history pages are keyset ranges of it.
//! - `playmark_series`: per series, the pointer to the episode written last
//!   (`playmark_core::library::SeriesPointer`), moved by the same statement
//!   that writes the episode, with an index by activity.
//! - `playmark_profiles`: each profile's row count, kept by the same
//!   statements that insert and delete rows (a data-modifying `WITH`; `xmax
//!   = 0` tells an inserted row from an updated one), with an index on the
//!   count, so the profiles over a cap are found without a scan.
//!
//! The SQL is plain PostgreSQL, no extensions and no triggers.

/// Serializes concurrent migrations of several nodes starting at once.
const MIGRATION_LOCK: i64 = 0x706c_6179_6d61_726b; // "playmark"

/// Creates or upgrades the schema. Idempotent, and safe with many nodes
/// starting together: they queue on one advisory transaction lock. Rows
/// written before `finished` was stored are classified as finished past
/// `legacy_finished_percent`.
pub(crate) async fn migrate(
    client: &mut tokio_postgres::Client,
    legacy_finished_percent: f64,
) -> Result<(), tokio_postgres::Error> {
    let txn = client.transaction().await?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    let has = |table: &'static str, column: &'static str| {
        let txn = &txn;
        async move {
            txn.query_opt(
                "SELECT 1 FROM information_schema.columns WHERE table_schema::text = current_schema() \
                 AND table_name::text = $1 AND column_name::text = $2",
                &[&table, &column],
            )
            .await
            .map(|row| row.is_some())
        }
    };
    let had_finished = has("playmark_progress", "finished").await?;
    let had_finished_at = has("playmark_progress", "finished_at").await?;
    let had_profiles = has("playmark_profiles", "titles").await?;
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
        ALTER TABLE playmark_progress ADD COLUMN IF NOT EXISTS finished boolean NOT NULL DEFAULT false;
        ALTER TABLE playmark_progress ADD COLUMN IF NOT EXISTS series_id text;
        ALTER TABLE playmark_progress ADD COLUMN IF NOT EXISTS episode integer;
        ALTER TABLE playmark_progress ADD COLUMN IF NOT EXISTS finished_at bigint;
        CREATE INDEX IF NOT EXISTS playmark_progress_standalone
            ON playmark_progress (account_id, profile_id, updated_at DESC, video_id COLLATE "C")
            WHERE NOT deleted AND NOT hidden AND NOT finished AND series_id IS NULL;
        CREATE INDEX IF NOT EXISTS playmark_progress_episodes
            ON playmark_progress (account_id, profile_id, updated_at DESC, video_id COLLATE "C")
            WHERE NOT deleted AND NOT hidden AND NOT finished AND series_id IS NOT NULL;
        DROP INDEX IF EXISTS playmark_progress_continue;
        CREATE INDEX IF NOT EXISTS playmark_progress_history
            ON playmark_progress (account_id, profile_id, finished_at DESC, video_id COLLATE "C")
            WHERE finished AND NOT deleted;
        CREATE TABLE IF NOT EXISTS playmark_series (
            account_id text   NOT NULL,
            profile_id text   NOT NULL,
            series_id  text   NOT NULL,
            video_id   text   NOT NULL,
            updated_at bigint NOT NULL,
            touched_at bigint NOT NULL,
            PRIMARY KEY (account_id, profile_id, series_id)
        );
        CREATE INDEX IF NOT EXISTS playmark_series_activity
            ON playmark_series (account_id, profile_id, updated_at DESC, series_id COLLATE "C");
        CREATE INDEX IF NOT EXISTS playmark_series_touched_at ON playmark_series (touched_at);
        CREATE TABLE IF NOT EXISTS playmark_profiles (
            account_id text   NOT NULL,
            profile_id text   NOT NULL,
            titles     bigint NOT NULL,
            PRIMARY KEY (account_id, profile_id)
        );
        CREATE INDEX IF NOT EXISTS playmark_profiles_titles ON playmark_profiles (titles);
        CREATE TABLE IF NOT EXISTS playmark_heartbeat (id integer PRIMARY KEY, at timestamptz NOT NULL);
        INSERT INTO playmark_heartbeat VALUES (1, now()) ON CONFLICT (id) DO NOTHING;
        "#,
    )
    .await?;
    if !had_finished {
        txn.execute(
            "UPDATE playmark_progress SET finished = true WHERE NOT deleted AND duration_ms IS NOT NULL \
             AND position_ms::float8 * 100 / duration_ms > $1::float8",
            &[&legacy_finished_percent],
        )
        .await?;
    }
    if !had_finished_at {
        // Titles finished before finish times were kept count from their
        // last write (as `Progress::finish_time` reads them).
        txn.execute(
            "UPDATE playmark_progress SET finished_at = updated_at WHERE finished AND NOT deleted",
            &[],
        )
        .await?;
    }
    if !had_profiles {
        txn.execute(
            "INSERT INTO playmark_profiles (account_id, profile_id, titles) \
             SELECT account_id, profile_id, count(*) FROM playmark_progress GROUP BY account_id, profile_id",
            &[],
        )
        .await?;
    }
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

/// Adds the new rows of a data-modifying `written` CTE (those with
/// `inserted`) to their profiles' counts.
macro_rules! count_inserted {
    () => {
        concat!(
            ", counted AS (INSERT INTO playmark_profiles AS c (account_id, profile_id, titles) ",
            "SELECT account_id, profile_id, count(*) FROM written WHERE inserted ",
            "GROUP BY account_id, profile_id ORDER BY account_id, profile_id ",
            "ON CONFLICT (account_id, profile_id) DO UPDATE SET titles = c.titles + excluded.titles) "
        )
    };
}

/// Takes the rows of a data-modifying `gone` CTE off their profiles' counts.
macro_rules! count_removed {
    () => {
        concat!(
            ", counted AS (UPDATE playmark_profiles AS c SET titles = c.titles - g.n ",
            "FROM (SELECT account_id, profile_id, count(*) AS n FROM gone GROUP BY account_id, profile_id) AS g ",
            "WHERE c.account_id = g.account_id AND c.profile_id = g.profile_id) "
        )
    };
}

/// Writes a batch of checkpoints (one row per key) where each is newer than
/// what stands and not refused by its stale-device guard, in one statement,
/// counts the new rows, and moves the series pointers. Returns the keys
/// that were applied, with what the write carried over
/// (`playmark_core::Progress::carry`: the series when the write names none,
/// the first finish time). `$9` and `$10` are each row's `finished` and
/// `hidden` (a checkpoint is never hidden; a mark as unwatched is),
/// `$16` and `$17` its series and episode (null: none named);
/// `$11..$15` list the guarded rows (account, profile, video, resumed_from,
/// max regression). The guard is evaluated inside `ON CONFLICT ... WHERE`,
/// against the locked current row, so it is as atomic as the merge rule
/// (`playmark_core::StaleGuard`). A series' pointer moves to the latest of
/// the batch's applied episodes when `SeriesPointer::moves` says so: the
/// write is at least as late (ties by video id).
pub(crate) const UPSERT_BATCH: &str = concat!(
    "WITH written AS (INSERT INTO playmark_progress AS t ",
    "(account_id, profile_id, video_id, deleted, updated_at, device_id, position_ms, duration_ms, touched_at, hidden, finished, ",
    "series_id, episode, finished_at) ",
    "SELECT a, p, v, false, u, d, pos, dur, tt, h, f, sid, ep, CASE WHEN f THEN u END FROM unnest(",
    "$1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::boolean[], ",
    "$10::boolean[], $16::text[], $17::integer[]) AS i(a, p, v, u, d, pos, dur, tt, f, h, sid, ep) ",
    "ON CONFLICT (account_id, profile_id, video_id) DO UPDATE SET ",
    "deleted = false, updated_at = excluded.updated_at, device_id = excluded.device_id, ",
    "position_ms = excluded.position_ms, duration_ms = excluded.duration_ms, touched_at = excluded.touched_at, ",
    "hidden = excluded.hidden, finished = excluded.finished, ",
    "series_id = COALESCE(excluded.series_id, t.series_id), ",
    "episode = CASE WHEN excluded.series_id IS NULL THEN t.episode ELSE excluded.episode END, ",
    "finished_at = CASE WHEN NOT excluded.finished THEN NULL ",
    "WHEN t.finished AND NOT t.deleted THEN COALESCE(t.finished_at, t.updated_at) ELSE excluded.updated_at END ",
    "WHERE ",
    order_of!("excluded"),
    " > ",
    order_of!("t"),
    " AND NOT EXISTS (SELECT 1 FROM unnest($11::text[], $12::text[], $13::text[], $14::bigint[], $15::bigint[]) ",
    "AS g(a, p, v, rf, ms) WHERE g.a = excluded.account_id AND g.p = excluded.profile_id AND g.v = excluded.video_id ",
    "AND NOT t.deleted AND t.updated_at > g.rf AND t.device_id <> excluded.device_id ",
    "AND t.position_ms - excluded.position_ms > g.ms)",
    " RETURNING account_id, profile_id, video_id, xmax = 0 AS inserted, series_id, episode, finished_at, updated_at, touched_at)",
    count_inserted!(),
    ", pointed AS (INSERT INTO playmark_series AS s (account_id, profile_id, series_id, video_id, updated_at, touched_at) ",
    "SELECT DISTINCT ON (account_id, profile_id, series_id COLLATE \"C\") account_id, profile_id, series_id, video_id, updated_at, touched_at ",
    "FROM written WHERE series_id IS NOT NULL ",
    "ORDER BY account_id, profile_id, series_id COLLATE \"C\", updated_at DESC, video_id COLLATE \"C\" DESC ",
    "ON CONFLICT (account_id, profile_id, series_id) DO UPDATE SET ",
    "video_id = excluded.video_id, updated_at = excluded.updated_at, touched_at = excluded.touched_at ",
    "WHERE excluded.updated_at > s.updated_at ",
    "OR (excluded.updated_at = s.updated_at AND excluded.video_id COLLATE \"C\" >= s.video_id COLLATE \"C\")) ",
    "SELECT account_id, profile_id, video_id, series_id, episode, finished_at FROM written"
);

/// The columns `entry_at` decodes, in its order.
macro_rules! entry_columns {
    ($t:literal) => {
        concat!(
            $t,
            "deleted, ",
            $t,
            "updated_at, ",
            $t,
            "device_id, ",
            $t,
            "position_ms, ",
            $t,
            "duration_ms, ",
            $t,
            "hidden, ",
            $t,
            "finished, ",
            $t,
            "series_id, ",
            $t,
            "episode, ",
            $t,
            "finished_at"
        )
    };
}

/// The standing rows of a set of keys: the writers' read-back, and every
/// point read (coalesced, `reads.rs`).
pub(crate) const GET_MANY: &str = concat!(
    "SELECT t.account_id, t.profile_id, t.video_id, ",
    entry_columns!("t."),
    " ",
    "FROM playmark_progress t JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(a, p, v) ",
    "ON t.account_id = k.a AND t.profile_id = k.p AND t.video_id = k.v"
);

/// One row: a group of one read uses this rather than [`GET_MANY`], which
/// costs PostgreSQL a function scan and a join for a single key.
pub(crate) const GET: &str = concat!(
    "SELECT account_id, profile_id, video_id, ",
    entry_columns!(""),
    " FROM playmark_progress WHERE account_id = $1 AND profile_id = $2 AND video_id = $3"
);

/// A profile's standalone titles in progress (no series), newest first,
/// ties by video id (byte-wise, as in Rust): the first `$3` of their
/// partial index.
pub(crate) const STANDALONE_IN_PROGRESS: &str = concat!(
    "SELECT video_id, ",
    entry_columns!(""),
    " FROM playmark_progress WHERE account_id = $1 AND profile_id = $2 ",
    "AND NOT deleted AND NOT hidden AND NOT finished AND series_id IS NULL ",
    "ORDER BY updated_at DESC, video_id COLLATE \"C\" LIMIT $3"
);

/// All of a profile's titles in progress: the first `$3` of the merge of
/// the two partial indexes, each read only as far as `$3`.
pub(crate) const CONTINUE_WATCHING: &str = concat!(
    "SELECT * FROM ((",
    "SELECT video_id, ",
    entry_columns!(""),
    " FROM playmark_progress WHERE account_id = $1 AND profile_id = $2 ",
    "AND NOT deleted AND NOT hidden AND NOT finished AND series_id IS NULL ",
    "ORDER BY updated_at DESC, video_id COLLATE \"C\" LIMIT $3",
    ") UNION ALL (",
    "SELECT video_id, ",
    entry_columns!(""),
    " FROM playmark_progress WHERE account_id = $1 AND profile_id = $2 ",
    "AND NOT deleted AND NOT hidden AND NOT finished AND series_id IS NOT NULL ",
    "ORDER BY updated_at DESC, video_id COLLATE \"C\" LIMIT $3",
    ")) AS shelf ORDER BY updated_at DESC, video_id COLLATE \"C\" LIMIT $3"
);

/// The first `$3` of a profile's history: finished titles, newest finish
/// first, ties by video id.
pub(crate) const HISTORY_FIRST: &str = concat!(
    "SELECT video_id, ",
    entry_columns!(""),
    " FROM playmark_progress WHERE account_id = $1 AND profile_id = $2 AND finished AND NOT deleted ",
    "ORDER BY finished_at DESC, video_id COLLATE \"C\" LIMIT $3"
);

/// The next `$5` of a profile's history after the title `$4` finished at
/// `$3`: the index range starts at the cursor (`finished_at <= $3`).
pub(crate) const HISTORY_AFTER: &str = concat!(
    "SELECT video_id, ",
    entry_columns!(""),
    " FROM playmark_progress WHERE account_id = $1 AND profile_id = $2 AND finished AND NOT deleted ",
    "AND finished_at <= $3 AND (finished_at < $3 OR video_id COLLATE \"C\" > $4) ",
    "ORDER BY finished_at DESC, video_id COLLATE \"C\" LIMIT $5"
);

/// The first `$3` of a profile's series by latest activity, each with the
/// row its pointer names (all nulls when that row is gone).
pub(crate) const SERIES_FIRST: &str = concat!(
    "SELECT s.series_id, s.updated_at, s.video_id, ",
    entry_columns!("t."),
    " FROM (SELECT series_id, updated_at, video_id FROM playmark_series ",
    "WHERE account_id = $1 AND profile_id = $2 ",
    "ORDER BY updated_at DESC, series_id COLLATE \"C\" LIMIT $3) AS s ",
    "LEFT JOIN playmark_progress t ON t.account_id = $1 AND t.profile_id = $2 AND t.video_id = s.video_id ",
    "ORDER BY s.updated_at DESC, s.series_id COLLATE \"C\""
);

/// The next `$5` after the series `$4` whose activity was at `$3`: the
/// index range starts at the cursor (`updated_at <= $3`).
pub(crate) const SERIES_AFTER: &str = concat!(
    "SELECT s.series_id, s.updated_at, s.video_id, ",
    entry_columns!("t."),
    " FROM (SELECT series_id, updated_at, video_id FROM playmark_series ",
    "WHERE account_id = $1 AND profile_id = $2 AND updated_at <= $3 ",
    "AND (updated_at < $3 OR series_id COLLATE \"C\" > $4) ",
    "ORDER BY updated_at DESC, series_id COLLATE \"C\" LIMIT $5) AS s ",
    "LEFT JOIN playmark_progress t ON t.account_id = $1 AND t.profile_id = $2 AND t.video_id = s.video_id ",
    "ORDER BY s.updated_at DESC, s.series_id COLLATE \"C\""
);

/// Deletes up to `$2` series pointers untouched since `$1` (their episode
/// was last written then).
pub(crate) const EXPIRE_SERIES: &str = "DELETE FROM playmark_series WHERE (account_id, profile_id, series_id) IN \
     (SELECT account_id, profile_id, series_id FROM playmark_series WHERE touched_at < $1 LIMIT $2) \
     AND touched_at < $1";

/// Replaces what stands with a tombstone placed after it (see
/// `Entry::tombstone`); a no-op when a tombstone at or after `$4` stands.
/// A tombstone for a title never seen is a new row, and counted.
pub(crate) const DELETE: &str = concat!(
    "WITH written AS (INSERT INTO playmark_progress AS t ",
    "(account_id, profile_id, video_id, deleted, updated_at, device_id, position_ms, duration_ms, touched_at) ",
    "VALUES ($1, $2, $3, true, $4, '', 0, NULL, $4) ",
    "ON CONFLICT (account_id, profile_id, video_id) DO UPDATE SET ",
    "deleted = true, ",
    "updated_at = CASE WHEN t.deleted THEN GREATEST(t.updated_at, excluded.updated_at) ",
    "ELSE GREATEST(excluded.updated_at, t.updated_at + 1) END, ",
    "device_id = '', position_ms = 0, duration_ms = NULL, touched_at = excluded.touched_at, hidden = false, finished = false, ",
    "series_id = NULL, episode = NULL, finished_at = NULL ",
    "WHERE NOT (t.deleted AND t.updated_at >= excluded.updated_at) ",
    "RETURNING account_id, profile_id, updated_at, xmax = 0 AS inserted)",
    count_inserted!(),
    "SELECT updated_at FROM written"
);

/// Deletes up to `$2` rows untouched since `$1` and returns their keys;
/// index-friendly and portable (no `ctid`, no `DELETE ... LIMIT`). The outer
/// `touched_at` test matters: under READ COMMITTED a row written while this
/// runs is re-checked against the outer condition only, and a fresh
/// checkpoint must survive.
pub(crate) const EXPIRE_BATCH: &str = concat!(
    "WITH gone AS (DELETE FROM playmark_progress WHERE (account_id, profile_id, video_id) IN ",
    "(SELECT account_id, profile_id, video_id FROM playmark_progress WHERE touched_at < $1 LIMIT $2) ",
    "AND touched_at < $1 RETURNING account_id, profile_id, video_id)",
    count_removed!(),
    "SELECT account_id, profile_id, video_id FROM gone"
);

/// Profiles with more than `$1` rows, the most first, at most `$2`: a range
/// of the count index.
pub(crate) const OVER_CAP: &str = "SELECT account_id, profile_id, titles FROM playmark_profiles \
     WHERE titles > $1 ORDER BY titles DESC LIMIT $2";

/// Deletes the `$3` least recently written rows of one profile (ties by
/// video id), and takes them off its count. Returns their video ids.
pub(crate) const TRIM_PROFILE: &str = concat!(
    "WITH victims AS (SELECT video_id FROM playmark_progress WHERE account_id = $1 AND profile_id = $2 ",
    "ORDER BY updated_at, video_id COLLATE \"C\" LIMIT $3), ",
    "gone AS (DELETE FROM playmark_progress p USING victims v ",
    "WHERE p.account_id = $1 AND p.profile_id = $2 AND p.video_id = v.video_id ",
    "RETURNING p.account_id, p.profile_id, p.video_id)",
    count_removed!(),
    "SELECT video_id FROM gone"
);

/// Hides a live row from continue-watching; its progress is untouched.
/// Returns the row's checkpoint.
pub(crate) const HIDE: &str = concat!(
    "UPDATE playmark_progress SET hidden = true ",
    "WHERE account_id = $1 AND profile_id = $2 AND video_id = $3 AND NOT deleted RETURNING ",
    entry_columns!("")
);

/// The readiness probe: a write, so a server that answers but cannot write
/// (a replica, a full disk) is reported.
pub(crate) const HEARTBEAT: &str = "UPDATE playmark_heartbeat SET at = now() WHERE id = 1";
