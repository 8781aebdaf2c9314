//! The store's behaviour, as a test suite that every backend runs: each function takes a
//! fresh, empty store.

use super::{
    Checkpoint, Error, Event, InstanceFilter, Listed, Listing, MAX_NESTING, RuntimeStatus,
    Settlement, Store,
};
use chrono::{Duration, Utc};

fn complete(event: &Event) -> Settlement {
    Settlement::Complete {
        completion: event.clone(),
    }
}

pub async fn schedule(store: &dyn Store, id: &str, first_seq: u64, tasks: &[u32]) {
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
        .checkpoint(Checkpoint::new(
            id,
            first_seq,
            events,
            RuntimeStatus::Running,
            now,
        ))
        .await
        .unwrap();
}

pub async fn instances_are_created_once_with_their_first_event(store: &dyn Store) {
    let created = store
        .create_instance("i1", "Orch", "\"x\"", Utc::now())
        .await
        .unwrap();
    assert_eq!(created.status, RuntimeStatus::Pending);
    assert_eq!(store.instance("i1").await.unwrap(), Some(created));
    assert!(matches!(
        store.create_instance("i1", "Orch", "1", Utc::now()).await,
        Err(Error::InstanceExists(_))
    ));
    let history = store.history("i1").await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(store.history_len("i1").await.unwrap(), 1);
    assert_eq!(store.history_len("nope").await.unwrap(), 0);
    assert_eq!(
        history[0].event,
        Event::ExecutionStarted {
            name: "Orch".into(),
            input: "\"x\"".into(),
            first_task: 0,
        }
    );
    assert_eq!(
        store.unfinished_instances().await.unwrap(),
        vec!["i1".to_string()]
    );
    assert_eq!(store.instance("nope").await.unwrap(), None);
}

pub async fn a_checkpoint_appends_events_and_enqueues_their_work_atomically(store: &dyn Store) {
    store
        .create_instance("i1", "Orch", "null", Utc::now())
        .await
        .unwrap();
    schedule(store, "i1", 1, &[0, 1]).await;
    assert_eq!(store.history("i1").await.unwrap().len(), 4);
    assert_eq!(store.history_len("i1").await.unwrap(), 4);
    assert_eq!(
        store.instance("i1").await.unwrap().map(|i| i.status),
        Some(RuntimeStatus::Running)
    );

    // A writer that does not know the history's length is refused, and changes nothing.
    let now = Utc::now();
    let refused = store
        .checkpoint(Checkpoint::new(
            "i1",
            1,
            vec![(
                now,
                Event::TaskScheduled {
                    task_id: 2,
                    name: "A".into(),
                    input: "2".into(),
                    retry: None,
                },
            )],
            RuntimeStatus::Running,
            now,
        ))
        .await;
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
    assert_eq!(store.history("i1").await.unwrap().len(), 4);

    let claimed = store
        .claim_work("me", 10, now, now + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|w| w.task_id).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert!(claimed.iter().all(|w| w.attempt == 1));
    assert!(
        store
            .claim_work("other", 10, now, now + Duration::minutes(5))
            .await
            .unwrap()
            .is_empty(),
        "leased items are not handed out twice"
    );
}

pub async fn completing_work_moves_the_result_to_the_inbox_once(store: &dyn Store) {
    store
        .create_instance("i1", "Orch", "null", Utc::now())
        .await
        .unwrap();
    schedule(store, "i1", 1, &[0]).await;
    let now = Utc::now();
    let item = store
        .claim_work("me", 1, now, now + Duration::minutes(5))
        .await
        .unwrap()
        .remove(0);
    let done = Event::TaskCompleted {
        task_id: 0,
        result: "7".into(),
    };
    assert!(
        !store
            .settle_work(&item, "someone-else", complete(&done), now)
            .await
            .unwrap(),
        "only the lease holder completes"
    );
    assert!(
        store
            .settle_work(&item, "me", complete(&done), now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .settle_work(&item, "me", complete(&done), now)
            .await
            .unwrap(),
        "a second completion is dropped"
    );
    let inbox = store.inbox("i1", 0, usize::MAX, usize::MAX).await.unwrap();
    assert_eq!(
        inbox.iter().map(|m| m.event.clone()).collect::<Vec<_>>(),
        vec![done.clone()]
    );

    // Consuming the message in a terminal checkpoint clears it and any leftover work.
    schedule(store, "i1", 3, &[1]).await;
    store
        .checkpoint(Checkpoint {
            consumed: vec![inbox[0].id],
            output: Some("7".into()),
            custom_status: Some("\"done\"".into()),
            ..Checkpoint::new(
                "i1",
                5,
                vec![
                    (now, done),
                    (now, Event::ExecutionCompleted { result: "7".into() }),
                ],
                RuntimeStatus::Completed,
                now,
            )
        })
        .await
        .unwrap();
    assert!(
        store
            .inbox("i1", 0, usize::MAX, usize::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .claim_work("me", 10, now, now + Duration::minutes(5))
            .await
            .unwrap()
            .is_empty()
    );
    let instance = store.instance("i1").await.unwrap().unwrap();
    assert_eq!(
        (
            instance.status,
            instance.output.as_deref(),
            instance.custom_status.as_deref()
        ),
        (RuntimeStatus::Completed, Some("7"), Some("\"done\""))
    );
    assert!(store.unfinished_instances().await.unwrap().is_empty());
}

pub async fn a_late_result_never_settles_another_item_or_attempt(store: &dyn Store) {
    // Claims look a second ahead, so that items scheduled a moment ago are due.
    let now = Utc::now() + Duration::seconds(1);
    let lease = now + Duration::minutes(5);
    store
        .create_instance("a", "Orch", "null", now)
        .await
        .unwrap();
    schedule(store, "a", 1, &[0]).await;
    let stale = store
        .claim_work("me", 1, now, lease)
        .await
        .unwrap()
        .remove(0);
    // Instance a ends while its activity still runs; b's new item must get a new id.
    let ended = Event::ExecutionCompleted { result: "0".into() };
    store
        .checkpoint(Checkpoint {
            output: Some("0".into()),
            ..Checkpoint::new("a", 3, vec![(now, ended)], RuntimeStatus::Completed, now)
        })
        .await
        .unwrap();
    store
        .create_instance("b", "Orch", "null", now)
        .await
        .unwrap();
    schedule(store, "b", 1, &[0]).await;
    let fresh = store
        .claim_work("me", 1, now, lease)
        .await
        .unwrap()
        .remove(0);
    assert_ne!(fresh.id, stale.id, "work item ids are never reused");
    let done = Event::TaskCompleted {
        task_id: 0,
        result: "1".into(),
    };
    assert!(
        !store
            .settle_work(&stale, "me", complete(&done), now)
            .await
            .unwrap()
    );
    assert!(
        store
            .inbox("a", 0, usize::MAX, usize::MAX)
            .await
            .unwrap()
            .is_empty()
            && store
                .inbox("b", 0, usize::MAX, usize::MAX)
                .await
                .unwrap()
                .is_empty()
    );

    // An attempt that was retried cannot complete after the next attempt was claimed.
    let notice = Event::TaskRetrying {
        task_id: 0,
        attempt: 1,
        message: "x".into(),
        retry_at: now,
    };
    assert!(
        store
            .settle_work(
                &fresh,
                "me",
                Settlement::Retry {
                    retry_at: now,
                    notice: notice.clone()
                },
                now
            )
            .await
            .unwrap()
    );
    let second = store
        .claim_work("me", 1, now, lease)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.attempt, 2);
    assert!(
        !store
            .settle_work(&fresh, "me", complete(&done), now)
            .await
            .unwrap(),
        "the first attempt is fenced off"
    );
    assert!(
        store
            .settle_work(&second, "me", complete(&done), now)
            .await
            .unwrap()
    );
}

pub async fn an_owner_never_reclaims_its_own_leases_but_others_take_expired_ones(
    store: &dyn Store,
) {
    let now = Utc::now() + Duration::seconds(1);
    store
        .create_instance("a", "Orch", "null", now)
        .await
        .unwrap();
    schedule(store, "a", 1, &[0]).await;
    let expired = now - Duration::minutes(1);
    assert_eq!(
        store.claim_work("me", 1, now, expired).await.unwrap().len(),
        1
    );
    assert!(
        store
            .claim_work("me", 1, now, now + Duration::minutes(5))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .claim_work("other", 1, now, now + Duration::minutes(5))
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn creating_over_an_ended_instance_replaces_it_and_over_a_live_one_fails(
    store: &dyn Store,
) {
    let now = Utc::now();
    store.create_instance("x", "Orch", "1", now).await.unwrap();
    assert!(matches!(
        store.create_instance("x", "Orch", "2", now).await,
        Err(Error::InstanceExists(_))
    ));
    store
        .checkpoint(Checkpoint::new(
            "x",
            1,
            vec![(
                now,
                Event::ExecutionFailed {
                    message: "no".into(),
                },
            )],
            RuntimeStatus::Failed,
            now,
        ))
        .await
        .unwrap();
    let again = store.create_instance("x", "Orch", "3", now).await.unwrap();
    assert_eq!(
        (again.status, again.input.as_str()),
        (RuntimeStatus::Pending, "3")
    );
    assert_eq!(
        store.history("x").await.unwrap().len(),
        1,
        "the old history is gone"
    );
}

pub async fn concurrent_changes_commit_together_yet_fail_alone(store: &dyn Store) {
    let now = Utc::now();
    // Many callers at once: each is answered on its own, and a refused change (a
    // duplicate id) takes nothing of the others with it.
    let creates = (0..200).map(|n| {
        let id = format!("c{}", n % 150);
        async move { store.create_instance(&id, "Orch", "null", now).await }
    });
    let results = futures::future::join_all(creates).await;
    let (created, refused): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    assert_eq!(created.len(), 150);
    assert_eq!(refused.len(), 50);
    assert!(
        refused
            .iter()
            .all(|r| matches!(r, Err(Error::InstanceExists(_))))
    );
    assert_eq!(store.unfinished_instances().await.unwrap().len(), 150);
    for n in 0..150 {
        assert_eq!(store.history(&format!("c{n}")).await.unwrap().len(), 1);
    }
}

pub async fn a_change_that_fails_halfway_keeps_nothing_of_itself(store: &dyn Store) {
    let now = Utc::now();
    let ids: Vec<String> = (0..40).map(|n| format!("h{n}")).collect();
    for id in &ids {
        store
            .create_instance(id, "Orch", "null", now)
            .await
            .unwrap();
    }
    // Half of the episodes schedule task 0 twice: the second insert fails after the
    // first succeeded. Sent at once, some share a transaction and some have one alone;
    // either way a failed episode leaves no trace and the others are kept whole.
    let episodes = ids.iter().enumerate().map(|(n, id)| {
        let scheduled = |task_id| {
            (
                now,
                Event::TaskScheduled {
                    task_id,
                    name: "A".into(),
                    input: "null".into(),
                    retry: None,
                },
            )
        };
        let mut events = vec![(now, Event::OrchestratorStarted), scheduled(0)];
        events.push(scheduled(if n % 2 == 0 { 0 } else { 1 }));
        store.checkpoint(Checkpoint::new(id, 1, events, RuntimeStatus::Running, now))
    });
    let results = futures::future::join_all(episodes).await;
    for (n, (id, result)) in ids.iter().zip(results).enumerate() {
        let history = store.history(id).await.unwrap();
        if n % 2 == 0 {
            assert!(result.is_err(), "{id}: a duplicate task is refused");
            assert_eq!(
                history.len(),
                1,
                "{id}: nothing of the failed episode is kept"
            );
            assert_eq!(store.progress(id).await.unwrap().scheduled, 0);
        } else {
            assert!(result.is_ok(), "{id}: {result:?}");
            assert_eq!(history.len(), 4, "{id}");
        }
    }
    let claimed = store
        .claim_work("w", 1000, now, now + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(
        claimed.len(),
        40,
        "two items for each of the 20 kept episodes"
    );
    assert!(claimed.iter().all(|item| {
        let n: usize = item.instance_id[1..].parse().unwrap();
        n % 2 == 1
    }));
}

pub async fn large_payloads_round_trip_out_of_line(store: &dyn Store) {
    let now = Utc::now();
    let big: String = serde_json::to_string(
        &(0..40_000)
            .map(|n| format!("/srv/site/{n:08}/a-rather-long-file-name.html"))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(big.len() > 1 << 20);
    store
        .create_instance("big", "Orch", &big, now)
        .await
        .unwrap();
    schedule(store, "big", 1, &[0]).await;
    let item = store
        .claim_work(
            "me",
            1,
            now + Duration::seconds(1),
            now + Duration::minutes(5),
        )
        .await
        .unwrap()
        .remove(0);
    let done = Event::TaskCompleted {
        task_id: 0,
        result: big.clone(),
    };
    assert!(
        store
            .settle_work(&item, "me", complete(&done), now)
            .await
            .unwrap()
    );
    let inbox = store.inbox("big", 0, usize::MAX, usize::MAX).await.unwrap();
    assert_eq!(inbox[0].event, done);
    store
        .checkpoint(Checkpoint {
            consumed: vec![inbox[0].id],
            ..Checkpoint::new(
                "big",
                3,
                vec![(now, done.clone())],
                RuntimeStatus::Running,
                now,
            )
        })
        .await
        .unwrap();
    assert_eq!(store.instance("big").await.unwrap().unwrap().input, big);
    let history = store.history("big").await.unwrap();
    assert_eq!(history[3].event, done);
    assert!(matches!(&history[0].event, Event::ExecutionStarted { input, .. } if *input == big));
    assert!(
        store
            .inbox("big", 0, usize::MAX, usize::MAX)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn messages_reach_only_live_instances_and_read_after_a_cursor(store: &dyn Store) {
    let now = Utc::now();
    let suspend = Event::ExecutionSuspended { reason: "r".into() };
    assert!(matches!(
        store.post_message("nobody", &suspend, now).await,
        Err(Error::UnknownInstance(_))
    ));
    store
        .create_instance("m", "Orch", "null", now)
        .await
        .unwrap();
    store.post_message("m", &suspend, now).await.unwrap();
    store.post_message("m", &suspend, now).await.unwrap();
    let all = store.inbox("m", 0, usize::MAX, usize::MAX).await.unwrap();
    assert_eq!(all.len(), 2);
    let after = store
        .inbox("m", all[0].id, usize::MAX, usize::MAX)
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    // A read ends with the message that brings it to its byte limit.
    let event = Event::EventRaised {
        name: "e".into(),
        input: format!("\"{}\"", "x".repeat(100 << 10)),
    };
    for _ in 0..3 {
        store.post_message("m", &event, now).await.unwrap();
    }
    let weight = event.weight();
    let read = |max_bytes| store.inbox("m", after[0].id, usize::MAX, max_bytes);
    assert_eq!(read(weight + 1).await.unwrap().len(), 2);
    assert_eq!(
        read(1).await.unwrap().len(),
        1,
        "never none while one waits"
    );
    assert_eq!(read(usize::MAX).await.unwrap().len(), 3);
    assert_eq!(after[0].id, all[1].id);
    store
        .checkpoint(Checkpoint {
            output: Some("1".into()),
            ..Checkpoint::new(
                "m",
                1,
                vec![(now, Event::ExecutionCompleted { result: "1".into() })],
                RuntimeStatus::Completed,
                now,
            )
        })
        .await
        .unwrap();
    assert!(matches!(
        store.post_message("m", &suspend, now).await,
        Err(Error::Ended { .. })
    ));
}

pub async fn a_rewind_reschedules_the_given_tasks_of_a_failed_instance_only(store: &dyn Store) {
    store
        .create_instance("i1", "Orch", "null", Utc::now())
        .await
        .unwrap();
    schedule(store, "i1", 1, &[0, 1]).await;
    let rewound = Event::ExecutionRewound {
        reason: "fixed".into(),
    };
    let task = |task_id: u32| Event::TaskScheduled {
        task_id,
        name: "A".into(),
        input: task_id.to_string(),
        retry: None,
    };
    // A running instance is not rewound.
    assert!(matches!(
        store
            .rewind("i1", 4, rewound.clone(), vec![task(1)], Utc::now())
            .await,
        Err(Error::NotFailed {
            status: RuntimeStatus::Running,
            ..
        })
    ));
    assert!(matches!(
        store
            .rewind("nope", 0, rewound.clone(), vec![], Utc::now())
            .await,
        Err(Error::UnknownInstance(_))
    ));
    let now = Utc::now();
    store
        .checkpoint(Checkpoint {
            output: Some("\"boom\"".into()),
            ..Checkpoint::new(
                "i1",
                4,
                vec![(
                    now,
                    Event::ExecutionFailed {
                        message: "boom".into(),
                    },
                )],
                RuntimeStatus::Failed,
                now,
            )
        })
        .await
        .unwrap();
    assert!(
        store
            .claim_work("w", 10, now, now + Duration::minutes(1))
            .await
            .unwrap()
            .is_empty(),
        "a failed instance has no work"
    );
    assert!(matches!(
        store
            .rewind("i1", 4, rewound.clone(), vec![task(1)], Utc::now())
            .await,
        Err(Error::Conflict { .. })
    ));
    store
        .rewind("i1", 5, rewound.clone(), vec![task(1)], Utc::now())
        .await
        .unwrap();
    let instance = store.instance("i1").await.unwrap().unwrap();
    assert_eq!(
        (instance.status, instance.output),
        (RuntimeStatus::Pending, None)
    );
    assert_eq!(store.history("i1").await.unwrap()[5].event, rewound);
    assert_eq!(store.unfinished_instances().await.unwrap(), vec!["i1"]);
    let later = Utc::now() + Duration::seconds(1);
    let claimed = store
        .claim_work("w", 10, later, later + Duration::minutes(1))
        .await
        .unwrap();
    let claimed: Vec<_> = claimed
        .iter()
        .map(|item| (item.task_id, item.attempt))
        .collect();
    assert_eq!(claimed, vec![(1, 1)], "only the rescheduled task, afresh");
}

pub async fn eager_leases_skip_the_claim_and_settled_items_leave_with_their_episode(
    store: &dyn Store,
) {
    let now = Utc::now();
    store
        .create_instance("e", "Orch", "null", now)
        .await
        .unwrap();
    let scheduled = |task_id: u32| {
        (
            now,
            Event::TaskScheduled {
                task_id,
                name: "A".into(),
                input: task_id.to_string(),
                retry: None,
            },
        )
    };
    let checkpoint = |first_seq, events, settled, lease| Checkpoint {
        settled,
        lease,
        ..Checkpoint::new("e", first_seq, events, RuntimeStatus::Running, now)
    };
    let lease = crate::store::Lease {
        owner: "me".into(),
        until: now + Duration::minutes(5),
        max: 2,
    };
    let leased = store
        .checkpoint(checkpoint(
            1,
            vec![
                (now, Event::OrchestratorStarted),
                scheduled(0),
                scheduled(1),
                scheduled(2),
            ],
            vec![],
            Some(lease),
        ))
        .await
        .unwrap()
        .leased;
    assert_eq!(
        leased.iter().map(|w| w.task_id).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert!(
        leased
            .iter()
            .all(|w| w.attempt == 1 && w.input == w.task_id.to_string())
    );
    let later = now + Duration::seconds(1);
    let claimed = store
        .claim_work("other", 10, later, later + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|w| w.task_id).collect::<Vec<_>>(),
        vec![2],
        "leased items are not claimed again"
    );
    // Task 0's result reached the instance in memory: the episode that records it also
    // removes its work item.
    let done = Event::TaskCompleted {
        task_id: 0,
        result: "0".into(),
    };
    store
        .checkpoint(checkpoint(5, vec![(now, done)], vec![leased[0].id], None))
        .await
        .unwrap();
    assert!(!store.work_item_exists(leased[0].id).await.unwrap());
    assert!(store.work_item_exists(leased[1].id).await.unwrap());
    store.release_instance_leases("e").await.unwrap();
    let again = store
        .claim_work("me", 10, later, later + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|w| w.task_id).collect::<Vec<_>>(),
        vec![1, 2],
        "released items are claimed again; the settled one is gone"
    );
}

/// Commits one episode of `events` on instance `id` with `status`.
async fn commit(store: &dyn Store, id: &str, events: Vec<Event>, status: RuntimeStatus) {
    let first_seq = store.history(id).await.unwrap().len() as u64;
    let now = Utc::now();
    store
        .checkpoint(Checkpoint::new(
            id,
            first_seq,
            events.into_iter().map(|event| (now, event)).collect(),
            status,
            now,
        ))
        .await
        .unwrap();
}

pub async fn timers_fire_once_when_due_and_never_before(store: &dyn Store) {
    let start = Utc::now();
    for id in ["i1", "i2"] {
        store
            .create_instance(id, "Orch", "null", start)
            .await
            .unwrap();
    }
    assert_eq!(store.next_timer().await.unwrap(), None);
    let soon = start + Duration::seconds(10);
    let later = start + Duration::seconds(20);
    let timer = |task_id, fire_at| Event::TimerCreated { task_id, fire_at };
    commit(
        store,
        "i1",
        vec![Event::OrchestratorStarted, timer(0, later), timer(1, soon)],
        RuntimeStatus::Running,
    )
    .await;
    commit(
        store,
        "i2",
        vec![Event::OrchestratorStarted, timer(0, soon)],
        RuntimeStatus::Running,
    )
    .await;
    // Stored to the millisecond.
    let soon = super::stored_time(soon);
    let later = super::stored_time(later);
    assert_eq!(store.next_timer().await.unwrap(), Some(soon));

    let before = soon - Duration::milliseconds(1);
    assert_eq!(
        store.fire_due_timers(before, 100).await.unwrap(),
        Vec::<String>::new()
    );
    let mut fired = store.fire_due_timers(soon, 100).await.unwrap();
    fired.sort();
    assert_eq!(fired, vec!["i1".to_string(), "i2".to_string()]);
    assert_eq!(
        store.fire_due_timers(soon, 100).await.unwrap(),
        Vec::<String>::new(),
        "a timer fires once"
    );
    let inbox: Vec<Event> = store
        .inbox("i1", 0, usize::MAX, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.event)
        .collect();
    assert_eq!(
        inbox,
        vec![Event::TimerFired {
            task_id: 1,
            fire_at: soon
        }]
    );
    assert_eq!(store.next_timer().await.unwrap(), Some(later));

    // The batch limit holds, and an ended instance's timers are gone with it.
    commit(store, "i1", vec![], RuntimeStatus::Completed).await;
    assert_eq!(store.next_timer().await.unwrap(), None);
    assert_eq!(
        store.fire_due_timers(later, 100).await.unwrap(),
        Vec::<String>::new()
    );
}

pub async fn a_purge_removes_timers_and_rewinds_set_them_again(store: &dyn Store) {
    let now = Utc::now();
    store
        .create_instance("i1", "Orch", "null", now)
        .await
        .unwrap();
    let fire_at = super::stored_time(now + Duration::hours(1));
    let created = Event::TimerCreated {
        task_id: 0,
        fire_at,
    };
    commit(
        store,
        "i1",
        vec![Event::OrchestratorStarted, created.clone()],
        RuntimeStatus::Running,
    )
    .await;
    commit(
        store,
        "i1",
        vec![Event::ExecutionFailed {
            message: "x".into(),
        }],
        RuntimeStatus::Failed,
    )
    .await;
    assert_eq!(store.next_timer().await.unwrap(), None);
    let first_seq = store.history("i1").await.unwrap().len() as u64;
    store
        .rewind(
            "i1",
            first_seq,
            Event::ExecutionRewound { reason: "r".into() },
            vec![created],
            now,
        )
        .await
        .unwrap();
    assert_eq!(store.next_timer().await.unwrap(), Some(fire_at));
    commit(store, "i1", vec![], RuntimeStatus::Terminated).await;
    store.purge("i1").await.unwrap();
    assert_eq!(store.next_timer().await.unwrap(), None);
}

pub async fn the_inbox_is_read_across_instances_after_a_cursor(store: &dyn Store) {
    let now = Utc::now();
    for id in ["i1", "i2"] {
        store
            .create_instance(id, "Orch", "null", now)
            .await
            .unwrap();
    }
    let raised = Event::EventRaised {
        name: "E".into(),
        input: "1".into(),
    };
    store.post_message("i2", &raised, now).await.unwrap();
    store.post_message("i1", &raised, now).await.unwrap();
    let rows = store.inbox_since(0, 10).await.unwrap();
    let instances: Vec<&str> = rows.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(instances, vec!["i2", "i1"]);
    assert_eq!(store.inbox_since(0, 1).await.unwrap().len(), 1);
    assert!(store.inbox_since(rows[1].0, 10).await.unwrap().is_empty());
    assert_eq!(
        store.inbox("i1", 0, usize::MAX, usize::MAX).await.unwrap()[0].event,
        raised
    );
    // The first `max` messages only, so that one read is bounded.
    store.post_message("i1", &raised, now).await.unwrap();
    let first = store.inbox("i1", 0, 1, usize::MAX).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        store
            .inbox("i1", first[0].id, 1, usize::MAX)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Ends instance `id` with `event`, `status` and `output`; returns what it woke.
async fn end(
    store: &dyn Store,
    id: &str,
    event: Event,
    status: RuntimeStatus,
    output: &str,
) -> Vec<String> {
    let first_seq = store.history(id).await.unwrap().len() as u64;
    let now = Utc::now();
    store
        .checkpoint(Checkpoint {
            output: Some(output.to_string()),
            ..Checkpoint::new(id, first_seq, vec![(now, event)], status, now)
        })
        .await
        .unwrap()
        .woken
}

pub async fn sub_orchestrations_start_report_to_their_parent_and_end_with_it(store: &dyn Store) {
    let now = Utc::now();
    store
        .create_instance("p", "Parent", "null", now)
        .await
        .unwrap();
    let child = |task_id: u32, id: &str| Event::SubOrchestrationScheduled {
        task_id,
        name: "Child".into(),
        instance_id: id.into(),
        input: task_id.to_string(),
    };
    let events = [
        Event::OrchestratorStarted,
        child(0, "p:0"),
        child(1, "p:1"),
        // Taken by a live instance (the parent itself): the task fails instead.
        child(2, "p"),
    ];
    let first = Checkpoint::new(
        "p",
        1,
        events.into_iter().map(|event| (now, event)).collect(),
        RuntimeStatus::Running,
        now,
    );
    let mut woken = store.checkpoint(first).await.unwrap().woken;
    woken.sort();
    assert_eq!(woken, ["p", "p:0", "p:1"]);
    for (id, input) in [("p:0", "0"), ("p:1", "1")] {
        let instance = store.instance(id).await.unwrap().unwrap();
        assert_eq!(
            (instance.name.as_str(), instance.status),
            ("Child", RuntimeStatus::Pending)
        );
        assert_eq!(instance.input, input);
        assert_eq!(instance.parent.as_deref(), Some("p"));
        assert_eq!(store.history(id).await.unwrap().len(), 1);
    }
    let inbox = store.inbox("p", 0, 10, usize::MAX).await.unwrap();
    assert!(
        matches!(&inbox[..], [m] if matches!(&m.event,
            Event::SubOrchestrationFailed { task_id: 2, message } if message.contains("exists"))),
        "{inbox:?}"
    );

    // A child that completes reports to its parent's task.
    let done = Event::ExecutionCompleted {
        result: "10".into(),
    };
    let woken = end(store, "p:0", done, RuntimeStatus::Completed, "10").await;
    assert_eq!(woken, ["p"]);
    let inbox = store.inbox("p", inbox[0].id, 10, usize::MAX).await.unwrap();
    assert_eq!(
        inbox.iter().map(|m| &m.event).collect::<Vec<_>>(),
        [&Event::SubOrchestrationCompleted {
            task_id: 0,
            result: "10".into()
        }]
    );

    // Terminating the parent terminates the children that have not ended.
    let stop = Event::ExecutionTerminated {
        reason: "stop".into(),
    };
    let woken = end(store, "p", stop, RuntimeStatus::Terminated, "\"stop\"").await;
    assert_eq!(woken, ["p:1"]);
    let inbox = store.inbox("p:1", 0, 10, usize::MAX).await.unwrap();
    assert!(
        matches!(&inbox[..], [m] if matches!(&m.event,
            Event::ExecutionTerminated { reason } if reason.contains("'p'"))),
        "{inbox:?}"
    );
    // An ended parent is told nothing.
    let stop = Event::ExecutionTerminated {
        reason: "parent".into(),
    };
    assert!(
        end(store, "p:1", stop, RuntimeStatus::Terminated, "\"x\"")
            .await
            .is_empty()
    );
}

pub async fn sub_orchestrations_nest_at_most_max_nesting_deep(store: &dyn Store) {
    let now = Utc::now();
    store
        .create_instance("n0", "Orch", "null", now)
        .await
        .unwrap();
    for depth in 0..=MAX_NESTING {
        let events = vec![
            (now, Event::OrchestratorStarted),
            (
                now,
                Event::SubOrchestrationScheduled {
                    task_id: 0,
                    name: "Orch".into(),
                    instance_id: format!("n{}", depth + 1),
                    input: "null".into(),
                },
            ),
        ];
        store
            .checkpoint(Checkpoint::new(
                &format!("n{depth}"),
                1,
                events,
                RuntimeStatus::Running,
                now,
            ))
            .await
            .unwrap();
    }
    let deepest = format!("n{MAX_NESTING}");
    assert!(store.instance(&deepest).await.unwrap().is_some());
    assert!(
        store
            .instance(&format!("n{}", MAX_NESTING + 1))
            .await
            .unwrap()
            .is_none(),
        "no instance is started below the bound"
    );
    let inbox = store.inbox(&deepest, 0, 10, usize::MAX).await.unwrap();
    assert!(
        matches!(&inbox[..], [message] if matches!(&message.event,
            Event::SubOrchestrationFailed { task_id: 0, message } if message.contains("nest at most"))),
        "the deepest instance's task fails: {inbox:?}"
    );
}

pub async fn continue_as_new_restarts_the_history_and_carries_untaken_events(store: &dyn Store) {
    let now = Utc::now();
    store
        .create_instance("e", "Eternal", "1", now)
        .await
        .unwrap();
    let events = [
        Event::OrchestratorStarted,
        Event::TaskScheduled {
            task_id: 0,
            name: "A".into(),
            input: "0".into(),
            retry: None,
        },
        Event::TimerCreated {
            task_id: 1,
            fire_at: now + Duration::hours(1),
        },
    ];
    let first = Checkpoint::new(
        "e",
        1,
        events.into_iter().map(|event| (now, event)).collect(),
        RuntimeStatus::Running,
        now,
    );
    store.checkpoint(first).await.unwrap();
    let raised = |name: &str, input: &str| Event::EventRaised {
        name: name.into(),
        input: input.into(),
    };
    store
        .post_message("e", &raised("later", "3"), now)
        .await
        .unwrap();

    let next = super::ContinueAsNew {
        input: "2".into(),
        first_task: 2,
        carried: vec![("x".into(), "\"a\"".into()), ("x".into(), "\"b\"".into())],
    };
    let stale = Checkpoint {
        continue_as_new: Some(next.clone()),
        ..Checkpoint::new("e", 1, vec![], RuntimeStatus::Running, now)
    };
    assert!(matches!(
        store.checkpoint(stale).await,
        Err(Error::Conflict { .. })
    ));
    let again = Checkpoint {
        continue_as_new: Some(next),
        custom_status: Some("\"kept\"".into()),
        ..Checkpoint::new("e", 4, vec![], RuntimeStatus::Running, now)
    };
    assert_eq!(store.checkpoint(again).await.unwrap(), Default::default());

    let history: Vec<Event> = store
        .history("e")
        .await
        .unwrap()
        .into_iter()
        .map(|event| event.event)
        .collect();
    assert_eq!(
        history,
        [
            Event::ExecutionStarted {
                name: "Eternal".into(),
                input: "2".into(),
                first_task: 2,
            },
            raised("x", "\"a\""),
            raised("x", "\"b\""),
        ]
    );
    let instance = store.instance("e").await.unwrap().unwrap();
    assert_eq!(instance.input, "2");
    assert_eq!(instance.status, RuntimeStatus::Running);
    assert_eq!(instance.custom_status.as_deref(), Some("\"kept\""));
    // The old execution's work and timer are gone; the inbox is kept.
    let claimed = store
        .claim_work("w", 10, now, now + Duration::minutes(1))
        .await
        .unwrap();
    assert!(claimed.is_empty(), "{claimed:?}");
    assert_eq!(store.next_timer().await.unwrap(), None);
    let inbox = store.inbox("e", 0, 10, usize::MAX).await.unwrap();
    assert_eq!(
        inbox.iter().map(|m| &m.event).collect::<Vec<_>>(),
        [&raised("later", "3")]
    );
}

pub async fn progress_counts_each_task_once_across_a_rewind(store: &dyn Store) {
    store
        .create_instance("r", "Orch", "null", Utc::now())
        .await
        .unwrap();
    let scheduled = |task_id: u32| Event::TaskScheduled {
        task_id,
        name: "A".into(),
        input: "1".into(),
        retry: None,
    };
    let progress = |scheduled, finished| super::Progress {
        scheduled,
        finished,
    };
    let events = vec![Event::OrchestratorStarted, scheduled(0), scheduled(1)];
    commit(store, "r", events, RuntimeStatus::Running).await;
    assert_eq!(store.progress("r").await.unwrap(), progress(2, 0));
    let events = vec![
        Event::OrchestratorStarted,
        Event::TaskCompleted {
            task_id: 0,
            result: "1".into(),
        },
        Event::TaskFailed {
            task_id: 1,
            message: "no".into(),
        },
        Event::ExecutionFailed {
            message: "no".into(),
        },
    ];
    commit(store, "r", events, RuntimeStatus::Failed).await;
    assert_eq!(store.progress("r").await.unwrap(), progress(2, 2));
    let rewound = Event::ExecutionRewound {
        reason: "again".into(),
    };
    store
        .rewind("r", 8, rewound, vec![scheduled(1)], Utc::now())
        .await
        .unwrap();
    assert_eq!(store.progress("r").await.unwrap(), progress(2, 1));
    let events = vec![
        Event::OrchestratorStarted,
        Event::TaskCompleted {
            task_id: 1,
            result: "1".into(),
        },
    ];
    commit(store, "r", events, RuntimeStatus::Running).await;
    assert_eq!(store.progress("r").await.unwrap(), progress(2, 2));
}

pub async fn listings_filter_in_the_store_and_bound_what_a_page_reads(store: &dyn Store) {
    let start = Utc::now();
    let big = format!("\"{}\"", "x".repeat(100 << 10));
    for (n, (id, name, input)) in [
        ("alpha-1", "Backup", big.as_str()),
        ("alpha-2", "NightlyBACKUP", big.as_str()),
        ("beta-1", "Other", big.as_str()),
        ("%x", "Other", "1"),
    ]
    .into_iter()
    .enumerate()
    {
        let created = start + Duration::milliseconds(n as i64);
        store
            .create_instance(id, name, input, created)
            .await
            .unwrap();
    }
    let everything = Listing {
        skip: 0,
        limit: 100,
        input: true,
        output: true,
        max_bytes: usize::MAX,
    };
    let ids = |listed: &Listed| -> Vec<String> {
        listed.instances.iter().map(|i| i.id.clone()).collect()
    };
    let list = |filter: InstanceFilter, listing: Listing| async move {
        store.list_instances(&filter, listing).await.unwrap()
    };

    let all = list(InstanceFilter::default(), everything).await;
    assert_eq!(
        ids(&all),
        ["%x", "beta-1", "alpha-2", "alpha-1"],
        "newest first"
    );
    assert!(!all.more);
    assert_eq!(all.instances[1].input, big);

    let prefixed = InstanceFilter {
        id_prefix: "alpha-".into(),
        ..InstanceFilter::default()
    };
    assert_eq!(
        ids(&list(prefixed, everything).await),
        ["alpha-2", "alpha-1"]
    );
    for literal in ["%", "_"] {
        let filter = InstanceFilter {
            id_prefix: literal.into(),
            ..InstanceFilter::default()
        };
        let expected: &[&str] = if literal == "%" { &["%x"] } else { &[] };
        assert_eq!(
            ids(&list(filter, everything).await),
            expected,
            "a prefix is literal text, never a pattern"
        );
    }
    let named = InstanceFilter {
        name_contains: "backup".into(),
        ..InstanceFilter::default()
    };
    assert_eq!(ids(&list(named, everything).await), ["alpha-2", "alpha-1"]);
    let both = InstanceFilter {
        id_prefix: "alpha-1".into(),
        name_contains: "NIGHTLY".into(),
        ..InstanceFilter::default()
    };
    assert!(list(both, everything).await.instances.is_empty());

    // Summaries only: no payload is read.
    let summaries = list(
        InstanceFilter::default(),
        Listing {
            input: false,
            output: false,
            ..everything
        },
    )
    .await;
    assert_eq!(summaries.instances.len(), 4);
    assert!(summaries.instances.iter().all(|i| i.input.is_empty()));

    // A page ends after the instance that brings its payloads to the budget, and says
    // that more follow; the next page goes on from there.
    let budget = Listing {
        max_bytes: 150 << 10,
        ..everything
    };
    let first = list(InstanceFilter::default(), budget).await;
    assert_eq!(ids(&first), ["%x", "beta-1", "alpha-2"]);
    assert!(first.more);
    let rest = list(InstanceFilter::default(), Listing { skip: 3, ..budget }).await;
    assert_eq!(ids(&rest), ["alpha-1"]);
    assert!(!rest.more);
    let tiny = list(
        InstanceFilter::default(),
        Listing {
            max_bytes: 0,
            ..everything
        },
    )
    .await;
    assert_eq!(ids(&tiny), ["%x"], "a page always holds one instance");
    assert!(tiny.more);
    let short = list(
        InstanceFilter::default(),
        Listing {
            limit: 2,
            ..everything
        },
    )
    .await;
    assert_eq!((short.instances.len(), short.more), (2, true));
}

pub async fn runnable_means_pending_or_running_known_and_not_excepted(store: &dyn Store) {
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(!store.any_runnable(&names(&["A"]), &[]).await.unwrap());
    store
        .create_instance("a1", "A", "null", Utc::now())
        .await
        .unwrap();
    store
        .create_instance("b1", "B", "null", Utc::now())
        .await
        .unwrap();
    assert!(store.any_runnable(&names(&["A"]), &[]).await.unwrap());
    assert!(store.any_runnable(&names(&["B", "C"]), &[]).await.unwrap());
    assert!(!store.any_runnable(&names(&["C"]), &[]).await.unwrap());
    assert!(!store.any_runnable(&[], &[]).await.unwrap());
    // Its host failed it here: not to be run again by this process.
    assert!(
        !store
            .any_runnable(&names(&["A"]), &names(&["a1"]))
            .await
            .unwrap()
    );
    // A running instance counts; suspended and ended ones do not.
    commit(
        store,
        "a1",
        vec![Event::OrchestratorStarted],
        RuntimeStatus::Running,
    )
    .await;
    assert!(store.any_runnable(&names(&["A"]), &[]).await.unwrap());
    commit(
        store,
        "a1",
        vec![Event::ExecutionSuspended {
            reason: String::new(),
        }],
        RuntimeStatus::Suspended,
    )
    .await;
    assert!(!store.any_runnable(&names(&["A"]), &[]).await.unwrap());
    end(
        store,
        "b1",
        Event::ExecutionCompleted { result: "1".into() },
        RuntimeStatus::Completed,
        "1",
    )
    .await;
    assert!(!store.any_runnable(&names(&["B"]), &[]).await.unwrap());
    // Names with quotes and non-ASCII letters are matched exactly.
    store
        .create_instance("q", "Back\"up ü", "null", Utc::now())
        .await
        .unwrap();
    assert!(
        store
            .any_runnable(&names(&["Back\"up ü"]), &[])
            .await
            .unwrap()
    );
    assert!(
        !store
            .any_runnable(&names(&["back\"up ü"]), &[])
            .await
            .unwrap()
    );
}
