//! `fedi-server migrate` against a real PostgreSQL primary.

mod common;

use common::*;
use sqlx::Connection;

/// The `.sql` files of a migrations directory: what one phase applies on a fresh database.
fn sql_files(dir: &str) -> usize {
    std::fs::read_dir(format!("{}/../{dir}", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".sql")
        })
        .count()
}

fn migrate(db: &str, args: &[&str]) -> std::process::Output {
    server_command(db, "redis://unused")
        .arg("migrate")
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn migrate_creates_the_schema_and_is_idempotent() {
    let db = fresh_database().await;
    let total = sql_files("migrations") + sql_files("migrations/post");
    for run in 0..2 {
        let out = migrate(&db, &[]);
        assert!(
            out.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = String::from_utf8_lossy(&out.stdout);
        let expected = if run == 0 {
            format!("applied={total}")
        } else {
            "applied=0".to_string()
        };
        assert!(
            log.contains(&expected),
            "run {run} should report {expected}: {log}"
        );
    }
    let mut conn = sqlx::PgConnection::connect(&db).await.unwrap();
    sqlx::query("INSERT INTO instance_settings (key, value) VALUES ('site.title', '\"Hi\"')")
        .execute(&mut conn)
        .await
        .expect("instance_settings exists after migrate");
    let long_key = "k".repeat(200);
    let err = sqlx::query("INSERT INTO instance_settings (key, value) VALUES ($1, 'null')")
        .bind(long_key)
        .execute(&mut conn)
        .await
        .expect_err("keys are bounded");
    assert!(err.to_string().contains("check constraint"), "{err}");
    // IDs are time-ordered: a later one is larger, and its high bits are milliseconds.
    let (a, b): (i64, i64) = sqlx::query_as("SELECT fedi_id(), fedi_id()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(b > a);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        ((a >> 16) - now_ms).abs() < 60_000,
        "{a} is not a timestamp id"
    );
}

#[tokio::test]
async fn migrate_against_an_unreachable_database_fails_clearly() {
    let url = format!("postgres://fedi:topsecret@127.0.0.1:{}/fedi", free_port());
    let out = server_command(&url, "redis://unused")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("cannot connect to the primary database"),
        "{all}"
    );
    assert!(!all.contains("topsecret"), "the password leaked: {all}");
}

#[tokio::test]
async fn a_separate_password_is_used_instead_of_the_one_in_the_url() {
    let db = fresh_database().await;
    let without_password = db.replacen(":fedi@", ":wrong@", 1);
    assert_ne!(
        db, without_password,
        "the test URL carries the password fedi"
    );
    let refused = server_command(&without_password, "redis://unused")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "the wrong password must be refused"
    );
    let out = server_command(&without_password, "redis://unused")
        .env("FEDI_DATABASE_PASSWORD", "fedi")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused_as_a_downgrade() {
    let db = migrated_database().await;
    let mut conn = sqlx::PgConnection::connect(&db).await.unwrap();
    // What a later release would have recorded.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (29991231000000, 'from the future', true, '\\x00', 1)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let out = migrate(&db, &[]);
    // A distinct exit code: the operator reports a refusal, not a failure to retry.
    assert_eq!(out.status.code(), Some(4));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("refusing to downgrade"), "{all}");
    assert!(all.contains("29991231000000"), "{all}");
}

#[tokio::test]
async fn pre_and_post_run_separately_and_a_later_post_phase_refuses_the_pre_phase() {
    let db = fresh_database().await;
    let out = migrate(&db, &["--pre"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        log.contains(&format!("applied={}", sql_files("migrations"))),
        "{log}"
    );
    let out = migrate(&db, &["--post"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        log.contains(&format!("applied={}", sql_files("migrations/post"))),
        "{log}"
    );
    // Both phases at once are not a thing: a rollout runs one, then the other.
    assert!(!migrate(&db, &["--pre", "--post"]).status.success());

    // A later release's post phase dropped what this version's code may need: even its pre
    // phase must not run.
    let mut conn = sqlx::PgConnection::connect(&db).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations_post (version, description, success, checksum, \
         execution_time) VALUES (29991231000001, 'from the future', true, '\\x00', 1)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let out = migrate(&db, &["--pre"]);
    assert_eq!(out.status.code(), Some(4));
    let all = String::from_utf8_lossy(&out.stdout);
    assert!(
        all.contains("post migration 29991231000001 was applied by a later release"),
        "{all}"
    );
}

mod side_by_side {
    //! The point of the split: the previous version keeps running its queries while the pre
    //! phase of the next one applies; only the post phase (after the rollout) breaks them.
    //! A schema of two versions, as a release would ship it.

    use super::*;
    use fedi_server::migrate::{Phase, Sets, apply};
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    const V1: &str = "CREATE TABLE items (id bigserial PRIMARY KEY, title text NOT NULL)";
    /// v2 renames `title` to `name`: additive first, with a trigger so that the old
    /// version's writes fill the new column...
    const V2_PRE: &str = "ALTER TABLE items ADD COLUMN name text; \
        UPDATE items SET name = title; \
        CREATE FUNCTION items_name() RETURNS trigger AS $$ BEGIN \
          NEW.name := coalesce(NEW.name, NEW.title); NEW.title := coalesce(NEW.title, NEW.name); \
          RETURN NEW; END $$ LANGUAGE plpgsql; \
        CREATE TRIGGER items_name BEFORE INSERT OR UPDATE ON items \
          FOR EACH ROW EXECUTE FUNCTION items_name()";
    /// ...and the old column goes only once no old code runs.
    const V2_POST: &str = "DROP TRIGGER items_name ON items; DROP FUNCTION items_name(); \
        ALTER TABLE items DROP COLUMN title; ALTER TABLE items ALTER COLUMN name SET NOT NULL";

    fn migration(version: i64, sql: &'static str) -> Migration {
        Migration::new(
            version,
            "fixture".into(),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    }

    fn migrator(migrations: Vec<Migration>, post: bool) -> Migrator {
        let mut m = Migrator::with_migrations(migrations);
        if post {
            m.dangerous_set_table_name("_sqlx_migrations_post");
        }
        m
    }

    /// The previous version's traffic: writes and reads of `title` on a few connections
    /// until stopped; counts successes, errors and the slowest query.
    struct OldVersion {
        stop: Arc<AtomicBool>,
        ok: Arc<AtomicU64>,
        slowest_ms: Arc<AtomicU64>,
        tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
    }

    impl OldVersion {
        async fn start(db: &str) -> Self {
            let (stop, ok, slowest_ms) = Default::default();
            let mut me = OldVersion {
                stop,
                ok,
                slowest_ms,
                tasks: Vec::new(),
            };
            for n in 0..3 {
                let mut conn = sqlx::PgConnection::connect(db).await.unwrap();
                let (stop, ok, slowest) = (me.stop.clone(), me.ok.clone(), me.slowest_ms.clone());
                me.tasks.push(tokio::spawn(async move {
                    let mut errors = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let r = async {
                            sqlx::query("INSERT INTO items (title) VALUES ($1)")
                                .bind(format!("from {n}"))
                                .execute(&mut conn)
                                .await?;
                            sqlx::query_scalar::<_, String>(
                                "SELECT title FROM items ORDER BY id DESC LIMIT 1",
                            )
                            .fetch_one(&mut conn)
                            .await
                        }
                        .await;
                        match r {
                            Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                errors.push(e.to_string());
                                0
                            }
                        };
                        let ms = started.elapsed().as_millis() as u64;
                        slowest.fetch_max(ms, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    errors
                }));
            }
            me
        }

        /// Stops the traffic; returns its errors.
        async fn stop(self) -> Vec<String> {
            self.stop.store(true, Ordering::Relaxed);
            let mut errors = Vec::new();
            for t in self.tasks {
                errors.extend(t.await.unwrap());
            }
            errors
        }
    }

    fn sets(v: &(Migrator, Migrator)) -> Sets<'_> {
        Sets {
            pre: &v.0,
            post: &v.1,
        }
    }

    #[tokio::test]
    async fn the_previous_version_keeps_working_through_the_pre_phase_and_a_lock_wait() {
        let db = fresh_database().await;
        let v1 = (
            migrator(vec![migration(1, V1)], false),
            migrator(vec![], true),
        );
        let v2 = (
            migrator(vec![migration(1, V1), migration(2, V2_PRE)], false),
            migrator(vec![migration(3, V2_POST)], true),
        );
        let lock_timeout = Duration::from_millis(500);
        let mut conn = sqlx::PgConnection::connect(&db).await.unwrap();
        apply(&mut conn, sets(&v1), Phase::All, lock_timeout)
            .await
            .unwrap();

        let old = OldVersion::start(&db).await;
        // A long transaction of the old version holds a lock the ALTER needs: the pre phase
        // gives up after the lock timeout instead of queueing every query behind it.
        let mut long = sqlx::PgConnection::connect(&db).await.unwrap();
        sqlx::query("BEGIN").execute(&mut long).await.unwrap();
        sqlx::query("SELECT count(*) FROM items")
            .execute(&mut long)
            .await
            .unwrap();
        let err = apply(&mut conn, sets(&v2), Phase::Pre, lock_timeout)
            .await
            .expect_err("the ALTER cannot get its lock");
        assert!(format!("{err:#}").contains("lock timeout"), "{err:#}");
        sqlx::query("COMMIT").execute(&mut long).await.unwrap();
        // The retry (the Job's next attempt) goes through.
        let applied = apply(&mut conn, sets(&v2), Phase::Pre, lock_timeout)
            .await
            .unwrap();
        assert_eq!(applied, 1);
        let before = old.ok.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            old.ok.load(Ordering::Relaxed) > before,
            "the old version still writes after the pre phase"
        );
        let slowest = old.slowest_ms.load(Ordering::Relaxed);
        let errors = old.stop().await;
        assert_eq!(
            errors,
            Vec::<String>::new(),
            "the old version's queries failed"
        );
        assert!(
            slowest < 5_000,
            "an old query waited {slowest} ms: the migration blocked the table"
        );
        // The old version's rows got the new column too.
        let missing: i64 = sqlx::query_scalar("SELECT count(*) FROM items WHERE name IS NULL")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(missing, 0);

        // After the rollout, the post phase removes what only the old version used.
        apply(&mut conn, sets(&v2), Phase::Post, lock_timeout)
            .await
            .unwrap();
        let err = sqlx::query("INSERT INTO items (title) VALUES ('old')")
            .execute(&mut conn)
            .await
            .expect_err("title is gone");
        assert!(err.to_string().contains("title"), "{err}");
        sqlx::query("INSERT INTO items (name) VALUES ('new')")
            .execute(&mut conn)
            .await
            .unwrap();

        // And v1 refuses the database now, naming the phase and the version.
        let err = apply(&mut conn, sets(&v1), Phase::Pre, lock_timeout)
            .await
            .expect_err("a downgrade past the schema");
        let refusal = err
            .downcast_ref::<fedi_server::migrate::SchemaNewer>()
            .expect("a SchemaNewer refusal");
        assert_eq!((refusal.phase, refusal.version), ("pre", 2));
    }
}
