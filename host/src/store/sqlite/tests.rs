//! Tests of the SQLite store against a real database file.

use super::SqliteStore;
use crate::store::{Checkpoint, Error, Event, RuntimeStatus, Store};
use chrono::{Duration, Utc};

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("weft.db")).unwrap();
    (dir, store)
}

fn schedule(store: &SqliteStore, id: &str, first_seq: u64, tasks: &[u32]) {
    let now = Utc::now();
    let mut events = vec![(now, Event::OrchestratorStarted)];
    events.extend(tasks.iter().map(|task| {
        (
            now,
            Event::TaskScheduled {
                task_id: *task,
                name: "A".into(),
                input: task.to_string(),
                retry: None,
            },
        )
    }));
    store
        .checkpoint(&Checkpoint {
            instance_id: id,
            first_seq,
            events: &events,
            consumed: &[],
            status: RuntimeStatus::Running,
            output: None,
            custom_status: None,
            now,
        })
        .unwrap();
}

#[test]
fn instances_are_created_once_with_their_first_event() {
    let (_dir, store) = open();
    let created = store
        .create_instance("i1", "Orch", "\"x\"", Utc::now())
        .unwrap();
    assert_eq!(created.status, RuntimeStatus::Pending);
    assert_eq!(store.instance("i1").unwrap(), Some(created));
    assert!(matches!(
        store.create_instance("i1", "Orch", "1", Utc::now()),
        Err(Error::InstanceExists(_))
    ));
    let history = store.history("i1").unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        history[0].event,
        Event::ExecutionStarted {
            name: "Orch".into(),
            input: "\"x\"".into()
        }
    );
    assert_eq!(
        store.unfinished_instances().unwrap(),
        vec!["i1".to_string()]
    );
    assert_eq!(store.instance("nope").unwrap(), None);
}

#[test]
fn a_checkpoint_appends_events_and_enqueues_their_work_atomically() {
    let (_dir, store) = open();
    store
        .create_instance("i1", "Orch", "null", Utc::now())
        .unwrap();
    schedule(&store, "i1", 1, &[0, 1]);
    assert_eq!(store.history("i1").unwrap().len(), 4);
    assert_eq!(
        store.instance("i1").unwrap().map(|i| i.status),
        Some(RuntimeStatus::Running)
    );

    // A writer that does not know the history's length is refused, and changes nothing.
    let now = Utc::now();
    let refused = store.checkpoint(&Checkpoint {
        instance_id: "i1",
        first_seq: 1,
        events: &[(
            now,
            Event::TaskScheduled {
                task_id: 2,
                name: "A".into(),
                input: "2".into(),
                retry: None,
            },
        )],
        consumed: &[],
        status: RuntimeStatus::Running,
        output: None,
        custom_status: None,
        now,
    });
    assert!(
        matches!(
            refused,
            Err(Error::Conflict {
                expected: 1,
                found: 4,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(store.history("i1").unwrap().len(), 4);

    let claimed = store
        .claim_work("me", 10, now, now + Duration::minutes(5))
        .unwrap();
    assert_eq!(
        claimed.iter().map(|w| w.task_id).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert!(claimed.iter().all(|w| w.attempt == 1));
    assert!(
        store
            .claim_work("other", 10, now, now + Duration::minutes(5))
            .unwrap()
            .is_empty(),
        "leased items are not handed out twice"
    );
}

#[test]
fn completing_work_moves_the_result_to_the_inbox_once() {
    let (_dir, store) = open();
    store
        .create_instance("i1", "Orch", "null", Utc::now())
        .unwrap();
    schedule(&store, "i1", 1, &[0]);
    let now = Utc::now();
    let item = store
        .claim_work("me", 1, now, now + Duration::minutes(5))
        .unwrap()
        .remove(0);
    let done = Event::TaskCompleted {
        task_id: 0,
        result: "7".into(),
    };
    assert!(
        !store
            .complete_work(&item, "someone-else", &done, now)
            .unwrap(),
        "only the lease holder completes"
    );
    assert!(store.complete_work(&item, "me", &done, now).unwrap());
    assert!(
        !store.complete_work(&item, "me", &done, now).unwrap(),
        "a second completion is dropped"
    );
    let inbox = store.inbox("i1").unwrap();
    assert_eq!(
        inbox.iter().map(|m| m.event.clone()).collect::<Vec<_>>(),
        vec![done.clone()]
    );

    // Consuming the message in a terminal checkpoint clears it and any leftover work.
    schedule(&store, "i1", 3, &[1]);
    store
        .checkpoint(&Checkpoint {
            instance_id: "i1",
            first_seq: 5,
            events: &[
                (now, done),
                (now, Event::ExecutionCompleted { result: "7".into() }),
            ],
            consumed: &[inbox[0].id],
            status: RuntimeStatus::Completed,
            output: Some("7"),
            custom_status: Some("\"done\""),
            now,
        })
        .unwrap();
    assert!(store.inbox("i1").unwrap().is_empty());
    assert!(
        store
            .claim_work("me", 10, now, now + Duration::minutes(5))
            .unwrap()
            .is_empty()
    );
    let instance = store.instance("i1").unwrap().unwrap();
    assert_eq!(
        (
            instance.status,
            instance.output.as_deref(),
            instance.custom_status.as_deref()
        ),
        (RuntimeStatus::Completed, Some("7"), Some("\"done\""))
    );
    assert!(store.unfinished_instances().unwrap().is_empty());
}

#[test]
fn released_leases_are_claimed_again_and_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .create_instance("i1", "Orch", "null", Utc::now())
            .unwrap();
        schedule(&store, "i1", 1, &[0]);
        let now = Utc::now();
        assert_eq!(
            store
                .claim_work("dead", 1, now, now + Duration::minutes(5))
                .unwrap()
                .len(),
            1
        );
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.history("i1").unwrap().len(), 3);
    store.release_leases().unwrap();
    let now = Utc::now();
    let again = store
        .claim_work("alive", 1, now, now + Duration::minutes(5))
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2, "the attempt count survives");
    assert_eq!(store.progress("i1").unwrap().scheduled, 1);
}

#[test]
fn a_late_result_never_settles_another_item_or_attempt() {
    let (_dir, store) = open();
    // Claims look a second ahead, so that items scheduled a moment ago are due.
    let now = Utc::now() + Duration::seconds(1);
    let lease = now + Duration::minutes(5);
    store.create_instance("a", "Orch", "null", now).unwrap();
    schedule(&store, "a", 1, &[0]);
    let stale = store.claim_work("me", 1, now, lease).unwrap().remove(0);
    // Instance a ends while its activity still runs; b's new item must get a new id.
    let ended = Event::ExecutionCompleted { result: "0".into() };
    store
        .checkpoint(&Checkpoint {
            instance_id: "a",
            first_seq: 3,
            events: &[(now, ended)],
            consumed: &[],
            status: RuntimeStatus::Completed,
            output: Some("0"),
            custom_status: None,
            now,
        })
        .unwrap();
    store.create_instance("b", "Orch", "null", now).unwrap();
    schedule(&store, "b", 1, &[0]);
    let fresh = store.claim_work("me", 1, now, lease).unwrap().remove(0);
    assert_ne!(fresh.id, stale.id, "work item ids are never reused");
    let done = Event::TaskCompleted {
        task_id: 0,
        result: "1".into(),
    };
    assert!(!store.complete_work(&stale, "me", &done, now).unwrap());
    assert!(store.inbox("a").unwrap().is_empty() && store.inbox("b").unwrap().is_empty());

    // An attempt that was retried cannot complete after the next attempt was claimed.
    let notice = Event::TaskRetrying {
        task_id: 0,
        attempt: 1,
        message: "x".into(),
        retry_at: now,
    };
    assert!(store.retry_work(&fresh, "me", now, &notice, now).unwrap());
    let second = store.claim_work("me", 1, now, lease).unwrap().remove(0);
    assert_eq!(second.attempt, 2);
    assert!(
        !store.complete_work(&fresh, "me", &done, now).unwrap(),
        "the first attempt is fenced off"
    );
    assert!(store.complete_work(&second, "me", &done, now).unwrap());
}

#[test]
fn an_owner_never_reclaims_its_own_leases_but_others_take_expired_ones() {
    let (_dir, store) = open();
    let now = Utc::now() + Duration::seconds(1);
    store.create_instance("a", "Orch", "null", now).unwrap();
    schedule(&store, "a", 1, &[0]);
    let expired = now - Duration::minutes(1);
    assert_eq!(store.claim_work("me", 1, now, expired).unwrap().len(), 1);
    assert!(
        store
            .claim_work("me", 1, now, now + Duration::minutes(5))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .claim_work("other", 1, now, now + Duration::minutes(5))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn creating_over_an_ended_instance_replaces_it_and_over_a_live_one_fails() {
    let (_dir, store) = open();
    let now = Utc::now();
    store.create_instance("x", "Orch", "1", now).unwrap();
    assert!(matches!(
        store.create_instance("x", "Orch", "2", now),
        Err(Error::InstanceExists(_))
    ));
    store
        .checkpoint(&Checkpoint {
            instance_id: "x",
            first_seq: 1,
            events: &[(
                now,
                Event::ExecutionFailed {
                    message: "no".into(),
                },
            )],
            consumed: &[],
            status: RuntimeStatus::Failed,
            output: None,
            custom_status: None,
            now,
        })
        .unwrap();
    let again = store.create_instance("x", "Orch", "3", now).unwrap();
    assert_eq!(
        (again.status, again.input.as_str()),
        (RuntimeStatus::Pending, "3")
    );
    assert_eq!(
        store.history("x").unwrap().len(),
        1,
        "the old history is gone"
    );
}
