//! The store test suite against a real SQLite file, plus what only a file can show.

use super::SqliteStore;
use crate::store::Store;
use crate::store::suite::{self, schedule};
use chrono::{Duration, Utc};

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("weft.db")).unwrap();
    (dir, store)
}

/// One `#[tokio::test]` per suite function, each on a fresh database.
macro_rules! suite_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (_dir, store) = open();
                suite::$name(&store).await;
            }
        )*
    };
}

suite_tests!(
    instances_are_created_once_with_their_first_event,
    a_checkpoint_appends_events_and_enqueues_their_work_atomically,
    completing_work_moves_the_result_to_the_inbox_once,
    a_late_result_never_settles_another_item_or_attempt,
    an_owner_never_reclaims_its_own_leases_but_others_take_expired_ones,
    creating_over_an_ended_instance_replaces_it_and_over_a_live_one_fails,
    concurrent_changes_commit_together_yet_fail_alone,
    a_change_that_fails_halfway_keeps_nothing_of_itself,
    large_payloads_round_trip_out_of_line,
    messages_reach_only_live_instances_and_read_after_a_cursor,
    a_rewind_reschedules_the_given_tasks_of_a_failed_instance_only,
    eager_leases_skip_the_claim_and_settled_items_leave_with_their_episode,
    timers_fire_once_when_due_and_never_before,
    a_purge_removes_timers_and_rewinds_set_them_again,
    the_inbox_is_read_across_instances_after_a_cursor,
    sub_orchestrations_start_report_to_their_parent_and_end_with_it,
    sub_orchestrations_nest_at_most_max_nesting_deep,
    continue_as_new_restarts_the_history_and_carries_untaken_events,
    progress_counts_each_task_once_across_a_rewind,
    listings_filter_in_the_store_and_bound_what_a_page_reads,
    runnable_means_pending_or_running_known_and_not_excepted,
);

#[tokio::test]
async fn released_leases_are_claimed_again_and_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .create_instance("i1", "Orch", "null", Utc::now())
            .await
            .unwrap();
        schedule(&store, "i1", 1, &[0]).await;
        let now = Utc::now();
        assert_eq!(
            store
                .claim_work("dead", 1, now, now + Duration::minutes(5))
                .await
                .unwrap()
                .len(),
            1
        );
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.history("i1").await.unwrap().len(), 3);
    store.release_leases().await.unwrap();
    let now = Utc::now();
    let again = store
        .claim_work("alive", 1, now, now + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].attempt, 1,
        "a lease that a crash cut short is no attempt"
    );
    assert!(again[0].recovered);
    assert_eq!(again[0].crashes, 0, "it was not recorded as running");
    assert!(store.mark_running(&again[0], "alive").await.unwrap());
    store.release_leases().await.unwrap();
    let third = store
        .claim_work("alive", 1, now, now + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!((third[0].attempt, third[0].crashes), (1, 1));
    assert_eq!(store.progress("i1").await.unwrap().scheduled, 1);
}
