//! Unit tests of the replay state machine: plain events in, plain events out.

use super::*;
use chrono::TimeZone;

fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, second)
        .single()
        .unwrap_or_default()
}

fn started() -> Event {
    Event::ExecutionStarted {
        name: "Orch".into(),
        input: "\"in\"".into(),
        first_task: 0,
    }
}

fn scheduled(task_id: u32, name: &str, input: &str) -> Event {
    Event::TaskScheduled {
        task_id,
        name: name.into(),
        input: input.into(),
        retry: None,
    }
}

fn completed(task_id: u32, result: &str) -> Event {
    Event::TaskCompleted {
        task_id,
        result: result.into(),
    }
}

/// A history from events, each with its episode's timestamp.
fn history(events: &[(u32, Event)]) -> Vec<HistoryEvent> {
    events
        .iter()
        .enumerate()
        .map(|(seq, (second, event))| HistoryEvent {
            seq: seq as u64,
            timestamp: at(*second),
            event: event.clone(),
        })
        .collect()
}

/// Runs the backup-shaped program: one listing, then one copy per file, then the sum.
/// Returns `None` where the program would block.
fn fan_out(replay: &mut Replay) -> Result<Option<u64>, Error> {
    let list = replay.call_activity("List", "\"/r\"", None)?;
    let Some(outcomes) = replay.when_all(&[list], &mut Wait::default())? else {
        return Ok(None);
    };
    let Outcome::Completed(files) = &outcomes[0] else {
        return Ok(None);
    };
    let files: Vec<String> = serde_json::from_str(files).unwrap_or_default();
    let tasks = files
        .iter()
        .map(|file| replay.call_activity("Copy", &format!("\"{file}\""), None))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(outcomes) = replay.when_all(&tasks, &mut Wait::default())? else {
        return Ok(None);
    };
    Ok(Some(
        outcomes
            .iter()
            .map(|outcome| match outcome {
                Outcome::Completed(bytes) => bytes.parse::<u64>().unwrap_or(0),
                Outcome::Failed(_) => 0,
            })
            .sum(),
    ))
}

#[test]
fn a_new_instance_schedules_its_first_task_and_blocks() {
    let mut replay = Replay::new(&history(&[(0, started())])).unwrap();
    replay.begin_episode(at(1), []);
    assert!(!replay.is_replaying());
    assert_eq!(fan_out(&mut replay), Ok(None));
    let (first_seq, events) = replay.take_pending();
    assert_eq!(first_seq, 1);
    let events: Vec<Event> = events.into_iter().map(|(_, e)| e).collect();
    assert_eq!(
        events,
        vec![Event::OrchestratorStarted, scheduled(0, "List", "\"/r\"")]
    );
}

#[test]
fn a_full_history_replays_without_new_work_and_returns_recorded_results() {
    let recorded = history(&[
        (0, started()),
        (1, Event::OrchestratorStarted),
        (1, scheduled(0, "List", "\"/r\"")),
        (2, Event::OrchestratorStarted),
        (2, completed(0, "[\"a\",\"b\"]")),
        (2, scheduled(1, "Copy", "\"a\"")),
        (2, scheduled(2, "Copy", "\"b\"")),
        (3, Event::OrchestratorStarted),
        (3, completed(2, "20")),
        (3, completed(1, "10")),
    ]);
    let mut replay = Replay::new(&recorded).unwrap();
    assert!(replay.is_replaying());
    assert_eq!(replay.now(), Some(at(1)));
    assert_eq!(fan_out(&mut replay), Ok(Some(30)));
    // "now" moved to the episode in which the last result arrived.
    assert_eq!(replay.now(), Some(at(3)));
    replay.complete(Ok("30".into())).unwrap();
    let (first_seq, events) = replay.take_pending();
    assert_eq!(first_seq, 10);
    assert_eq!(
        events.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
        vec![Event::ExecutionCompleted {
            result: "30".into()
        }]
    );
}

#[test]
fn a_partial_history_resumes_with_only_the_missing_work() {
    let recorded = history(&[
        (0, started()),
        (1, Event::OrchestratorStarted),
        (1, scheduled(0, "List", "\"/r\"")),
        (2, Event::OrchestratorStarted),
        (2, completed(0, "[\"a\",\"b\"]")),
        (2, scheduled(1, "Copy", "\"a\"")),
        (2, scheduled(2, "Copy", "\"b\"")),
        (3, Event::OrchestratorStarted),
        (3, completed(1, "10")),
    ]);
    let mut replay = Replay::new(&recorded).unwrap();
    // The restart delivers task 2's completion, found in the inbox.
    replay.begin_episode(at(4), [completed(2, "5"), completed(1, "999")]);
    assert_eq!(
        fan_out(&mut replay),
        Ok(Some(15)),
        "the duplicate completion of task 1 is ignored"
    );
    assert!(!replay.is_replaying());
    assert_eq!(replay.now(), Some(at(4)));
    let (first_seq, events) = replay.take_pending();
    assert_eq!(first_seq, 9);
    assert_eq!(
        events.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
        vec![Event::OrchestratorStarted, completed(2, "5")]
    );
}

#[test]
fn a_different_command_at_a_recorded_position_is_nondeterminism() {
    let recorded = history(&[
        (0, started()),
        (1, Event::OrchestratorStarted),
        (1, scheduled(0, "List", "\"/r\"")),
    ]);
    for (name, input) in [("Other", "\"/r\""), ("List", "\"/elsewhere\"")] {
        let mut replay = Replay::new(&recorded).unwrap();
        let error = replay.call_activity(name, input, None).unwrap_err();
        let Error::NonDeterminism(nd) = &error else {
            panic!("expected nondeterminism, got {error:?}")
        };
        assert_eq!((nd.task_id, nd.seq), (0, 2));
        let message = error.to_string();
        assert!(message.contains("history sequence 2"), "{message}");
        assert!(message.contains("call-activity List(\"/r\")"), "{message}");
        assert!(
            message.contains(&format!("call-activity {name}({input})")),
            "{message}"
        );
    }
}

#[test]
fn returning_before_a_recorded_command_is_nondeterminism() {
    let recorded = history(&[
        (0, started()),
        (1, Event::OrchestratorStarted),
        (1, scheduled(0, "List", "\"/r\"")),
    ]);
    let mut replay = Replay::new(&recorded).unwrap();
    let error = replay.complete(Ok("0".into())).unwrap_err();
    assert!(
        error.to_string().contains("returned without scheduling it"),
        "{error}"
    );
}

#[test]
fn waiting_on_a_task_never_scheduled_is_an_error() {
    let mut replay = Replay::new(&history(&[(0, started())])).unwrap();
    replay.begin_episode(at(1), []);
    assert_eq!(
        replay.when_all(&[3], &mut Wait::default()),
        Err(Error::UnknownTask(3))
    );
}

#[test]
fn when_any_picks_the_first_completion_in_history_order() {
    let recorded = history(&[
        (0, started()),
        (1, Event::OrchestratorStarted),
        (1, scheduled(0, "A", "1")),
        (1, scheduled(1, "B", "2")),
        (2, Event::OrchestratorStarted),
        (2, completed(1, "\"b\"")),
        (3, Event::OrchestratorStarted),
        (3, completed(0, "\"a\"")),
    ]);
    let mut replay = Replay::new(&recorded).unwrap();
    let tasks = [
        replay.call_activity("A", "1", None).unwrap(),
        replay.call_activity("B", "2", None).unwrap(),
    ];
    assert_eq!(replay.when_any(&tasks, &mut Wait::default()), Ok(Some(1)));
    assert_eq!(replay.now(), Some(at(2)));
}

#[test]
fn outcomes_gathered_into_an_open_episode_replay_as_if_delivered_at_once() {
    let committed = vec![
        (0, started()),
        (1, Event::OrchestratorStarted),
        (1, scheduled(0, "A", "1")),
        (1, scheduled(1, "B", "2")),
        (1, scheduled(2, "C", "3")),
    ];
    let code = |replay: &mut Replay| -> [u32; 2] {
        replay.call_activity("A", "1", None).unwrap();
        let b = replay.call_activity("B", "2", None).unwrap();
        replay.call_activity("C", "3", None).unwrap();
        [0, b]
    };

    // Live: C's outcome opens the episode and does not satisfy the wait for A or B;
    // B's, then A's, are gathered into the same episode.
    let mut live = Replay::new(&history(&committed)).unwrap();
    let tasks = code(&mut live);
    let mut wait = Wait::default();
    assert_eq!(live.when_any(&tasks, &mut wait), Ok(None));
    let _ = live.take_pending();
    live.begin_episode(at(5), [completed(2, "\"c\"")]);
    assert!(live.holds_only_completions());
    assert_eq!(live.when_any(&tasks, &mut wait), Ok(None));
    live.extend_episode([completed(1, "\"b\""), completed(0, "\"a\"")]);
    assert!(live.holds_only_completions());
    assert_eq!(live.when_any(&tasks, &mut wait), Ok(Some(1)));
    assert_eq!(live.now(), Some(at(5)));
    let (first_seq, pending) = live.take_pending();
    assert_eq!(first_seq, committed.len() as u64);
    assert_eq!(
        events_of(pending.clone()),
        vec![
            Event::OrchestratorStarted,
            completed(2, "\"c\""),
            completed(1, "\"b\""),
            completed(0, "\"a\""),
        ]
    );
    assert!(pending.iter().all(|(when, _)| *when == at(5)));

    // Replayed, the one episode gives the code the same answer at the same "now".
    let mut recorded = committed.clone();
    recorded.extend(pending.into_iter().map(|(_, event)| (5, event)));
    let mut replayed = Replay::new(&history(&recorded)).unwrap();
    let tasks = code(&mut replayed);
    assert_eq!(replayed.when_any(&tasks, &mut Wait::default()), Ok(Some(1)));
    assert_eq!(replayed.now(), Some(at(5)));
}

#[test]
fn an_episode_in_which_the_code_did_something_gathers_nothing() {
    let mut replay = Replay::new(&history(&[
        (0, started()),
        (1, Event::OrchestratorStarted),
        (1, scheduled(0, "List", "\"/r\"")),
    ]))
    .unwrap();
    assert!(!replay.holds_only_completions());
    let _ = replay.take_pending();
    replay.begin_episode(at(2), [completed(0, "[\"a\"]")]);
    assert!(replay.holds_only_completions());
    assert_eq!(fan_out(&mut replay), Ok(None));
    assert!(!replay.holds_only_completions());
}

#[test]
fn an_episode_in_which_nothing_happened_is_not_recorded() {
    let recorded = history(&[
        (0, started()),
        (1, Event::OrchestratorStarted),
        (1, scheduled(0, "List", "\"/r\"")),
    ]);
    let mut replay = Replay::new(&recorded).unwrap();
    replay.begin_episode(at(5), []);
    assert_eq!(fan_out(&mut replay), Ok(None));
    assert_eq!(replay.take_pending(), (3, vec![]));
    // The next real episode gets the next sequence number; the blocked code resumes.
    replay.begin_episode(at(6), [completed(0, "[]")]);
    assert_eq!(
        replay.when_all(&[0], &mut Wait::default()),
        Ok(Some(vec![Outcome::Completed("[]".into())]))
    );
    assert_eq!(replay.now(), Some(at(6)));
    assert_eq!(replay.take_pending().0, 3);
}

#[test]
fn malformed_histories_are_rejected() {
    let gap = vec![
        HistoryEvent {
            seq: 0,
            timestamp: at(0),
            event: started(),
        },
        HistoryEvent {
            seq: 2,
            timestamp: at(0),
            event: Event::OrchestratorStarted,
        },
    ];
    assert!(matches!(Replay::new(&gap), Err(Error::BadHistory(_))));
    let out_of_order = history(&[
        (0, started()),
        (1, Event::OrchestratorStarted),
        (1, scheduled(1, "A", "1")),
    ]);
    assert!(matches!(
        Replay::new(&out_of_order),
        Err(Error::BadHistory(_))
    ));
}

fn failed(task_id: u32, message: &str) -> Event {
    Event::TaskFailed {
        task_id,
        message: message.into(),
    }
}

/// A backup whose second copy failed, so the execution failed; then rewound.
fn failed_backup() -> Vec<(u32, Event)> {
    vec![
        (0, started()),
        (1, Event::OrchestratorStarted),
        (1, scheduled(0, "List", "\"/r\"")),
        (2, Event::OrchestratorStarted),
        (2, completed(0, r#"["a","b","c"]"#)),
        (2, scheduled(1, "Copy", "\"a\"")),
        (2, scheduled(2, "Copy", "\"b\"")),
        (2, scheduled(3, "Copy", "\"c\"")),
        (3, Event::OrchestratorStarted),
        (3, completed(1, "10")),
        (3, failed(2, "permission denied")),
        (3, completed(3, "30")),
        (
            3,
            Event::ExecutionFailed {
                message: "copying 'b' failed".into(),
            },
        ),
    ]
}

#[test]
fn a_rewind_plan_reschedules_failed_and_unfinished_tasks_only() {
    let plan = Replay::rewind_plan(&history(&failed_backup())).unwrap();
    assert_eq!(plan, vec![scheduled(2, "Copy", "\"b\"")]);

    // A task that never finished (the orchestrator failed while it ran) runs again too.
    let mut events = failed_backup();
    events.remove(11);
    let plan = Replay::rewind_plan(&history(&events)).unwrap();
    assert_eq!(
        plan,
        vec![scheduled(2, "Copy", "\"b\""), scheduled(3, "Copy", "\"c\"")]
    );
}

#[test]
fn after_a_rewind_earlier_failures_no_longer_count_and_the_run_goes_on() {
    let mut events = failed_backup();
    assert!(Replay::new(&history(&events)).unwrap().is_finished());
    events.push((
        4,
        Event::ExecutionRewound {
            reason: "fixed".into(),
        },
    ));
    let mut replay = Replay::new(&history(&events)).unwrap();
    assert!(
        !replay.is_finished(),
        "ExecutionFailed is not the end any more"
    );

    // The code replays: the failed copy is pending again, and nothing is scheduled anew.
    replay.begin_episode(at(5), []);
    assert_eq!(fan_out(&mut replay).unwrap(), None);
    let (_, pending) = replay.take_pending();
    assert!(
        !pending
            .iter()
            .any(|(_, event)| matches!(event, Event::TaskScheduled { .. })),
        "{pending:?}"
    );

    // The copy's new completion is delivered and the backup completes with every result.
    events.extend([(6, Event::OrchestratorStarted), (6, completed(2, "20"))]);
    let mut replay = Replay::new(&history(&events)).unwrap();
    replay.begin_episode(at(7), []);
    assert_eq!(fan_out(&mut replay).unwrap(), Some(60));
}

#[test]
fn a_second_failure_after_a_rewind_counts_and_a_stale_duplicate_does_not() {
    let mut events = failed_backup();
    events.push((
        4,
        Event::ExecutionRewound {
            reason: "fixed".into(),
        },
    ));
    let mut replay = Replay::new(&history(&events)).unwrap();
    replay.begin_episode(at(5), [failed(2, "still denied"), completed(2, "20")]);
    let (_, pending) = replay.take_pending();
    assert_eq!(
        pending
            .iter()
            .filter(|(_, e)| e.kind() == "TaskFailed")
            .count(),
        1,
        "the new failure is recorded once; the duplicate completion is dropped"
    );
    assert_eq!(
        pending
            .iter()
            .filter(|(_, e)| e.kind() == "TaskCompleted")
            .count(),
        0
    );
}

fn timer_created(task_id: u32, second: u32) -> Event {
    Event::TimerCreated {
        task_id,
        fire_at: at(second),
    }
}

fn timer_fired(task_id: u32, second: u32) -> Event {
    Event::TimerFired {
        task_id,
        fire_at: at(second),
    }
}

fn wait_started(task_id: u32, name: &str) -> Event {
    Event::EventWaitStarted {
        task_id,
        name: name.into(),
    }
}

fn raised(name: &str, input: &str) -> Event {
    Event::EventRaised {
        name: name.into(),
        input: input.into(),
    }
}

fn events_of(pending: Vec<(DateTime<Utc>, Event)>) -> Vec<Event> {
    pending.into_iter().map(|(_, e)| e).collect()
}

#[test]
fn a_timer_is_recorded_then_completes_when_it_fires() {
    let mut replay = Replay::new(&history(&[(0, started())])).unwrap();
    replay.begin_episode(at(1), []);
    let timer = replay.create_timer(at(30)).unwrap();
    let mut wait = Wait::default();
    assert_eq!(replay.when_all(&[timer], &mut wait), Ok(None));
    assert_eq!(
        events_of(replay.take_pending().1),
        vec![Event::OrchestratorStarted, timer_created(0, 30)]
    );
    // A fired notice for an activity id or an unknown task changes nothing.
    replay.begin_episode(at(31), [timer_fired(7, 30), timer_fired(0, 30)]);
    assert_eq!(
        replay.when_all(&[timer], &mut wait),
        Ok(Some(vec![Outcome::Completed("null".into())]))
    );
    assert_eq!(replay.now(), Some(at(31)));
    assert_eq!(
        events_of(replay.take_pending().1),
        vec![Event::OrchestratorStarted, timer_fired(0, 30)]
    );
}

#[test]
fn a_recorded_timer_replays_and_moves_now_to_when_it_fired() {
    let recorded = history(&[
        (0, started()),
        (1, Event::OrchestratorStarted),
        (1, timer_created(0, 30)),
        (31, Event::OrchestratorStarted),
        (31, timer_fired(0, 30)),
    ]);
    let mut replay = Replay::new(&recorded).unwrap();
    let timer = replay.create_timer(at(30)).unwrap();
    assert_eq!(
        replay.when_all(&[timer], &mut Wait::default()),
        Ok(Some(vec![Outcome::Completed("null".into())]))
    );
    assert_eq!(replay.now(), Some(at(31)));
}

#[test]
fn a_timer_at_another_time_or_in_place_of_an_activity_is_nondeterminism() {
    let recorded = history(&[
        (0, started()),
        (1, Event::OrchestratorStarted),
        (1, timer_created(0, 30)),
        (1, scheduled(1, "List", "\"/r\"")),
    ]);
    let mut replay = Replay::new(&recorded).unwrap();
    let error = replay.create_timer(at(40)).unwrap_err().to_string();
    assert!(
        error.contains("the history records create-timer(fire-at 2026-01-01T00:00:30.000Z)")
            && error.contains("now created create-timer(fire-at 2026-01-01T00:00:40.000Z)"),
        "{error}"
    );
    let mut replay = Replay::new(&recorded).unwrap();
    let error = replay
        .call_activity("List", "\"/r\"", None)
        .unwrap_err()
        .to_string();
    assert!(error.contains("records create-timer"), "{error}");
    let mut replay = Replay::new(&recorded).unwrap();
    replay.create_timer(at(30)).unwrap();
    let error = replay.create_timer(at(30)).unwrap_err().to_string();
    assert!(
        error.contains("records call-activity List(\"/r\")")
            && error.contains("now created create-timer"),
        "{error}"
    );
}

#[test]
fn when_any_over_an_activity_and_a_timer_returns_the_first_to_finish() {
    let mut replay = Replay::new(&history(&[(0, started())])).unwrap();
    replay.begin_episode(at(1), []);
    let work = replay.call_activity("Slow", "1", None).unwrap();
    let timer = replay.create_timer(at(10)).unwrap();
    let mut wait = Wait::default();
    assert_eq!(replay.when_any(&[work, timer], &mut wait), Ok(None));
    replay.take_pending();
    replay.begin_episode(at(11), [timer_fired(timer, 10), completed(work, "1")]);
    assert_eq!(replay.when_any(&[work, timer], &mut wait), Ok(Some(1)));
}

#[test]
fn a_raised_event_completes_the_wait_for_its_name() {
    let mut replay = Replay::new(&history(&[(0, started())])).unwrap();
    replay.begin_episode(at(1), []);
    let approval = replay.wait_for_event("Approval").unwrap();
    let mut wait = Wait::default();
    assert_eq!(replay.when_all(&[approval], &mut wait), Ok(None));
    assert_eq!(
        events_of(replay.take_pending().1),
        vec![Event::OrchestratorStarted, wait_started(0, "Approval")]
    );
    replay.begin_episode(at(5), [raised("Other", "1"), raised("Approval", "true")]);
    assert_eq!(
        replay.when_all(&[approval], &mut wait),
        Ok(Some(vec![Outcome::Completed("true".into())]))
    );
    assert_eq!(
        events_of(replay.take_pending().1),
        vec![
            Event::OrchestratorStarted,
            raised("Other", "1"),
            raised("Approval", "true")
        ],
        "every raised event is recorded, taken or not"
    );
}

#[test]
fn events_raised_before_the_wait_are_buffered_and_taken_in_the_order_raised() {
    let mut replay = Replay::new(&history(&[(0, started())])).unwrap();
    replay.begin_episode(at(1), [raised("Code", "1"), raised("Code", "2")]);
    let first = replay.wait_for_event("Code").unwrap();
    let second = replay.wait_for_event("Code").unwrap();
    let third = replay.wait_for_event("Code").unwrap();
    let mut wait = Wait::default();
    assert_eq!(replay.when_any(&[third], &mut Wait::default()), Ok(None));
    assert_eq!(
        replay.when_all(&[first, second], &mut wait),
        Ok(Some(vec![
            Outcome::Completed("1".into()),
            Outcome::Completed("2".into())
        ]))
    );
    let recorded = replay.take_pending().1;
    replay.begin_episode(at(2), [raised("Code", "3")]);
    assert_eq!(
        replay.when_all(&[third], &mut Wait::default()),
        Ok(Some(vec![Outcome::Completed("3".into())]))
    );
    replay.take_pending();

    // The same history, replayed, matches the same events to the same waits.
    let mut full = vec![(0, started())];
    full.extend(recorded.into_iter().map(|(_, e)| (1, e)));
    full.push((2, Event::OrchestratorStarted));
    full.push((2, raised("Code", "3")));
    let mut replay = Replay::new(&history(&full)).unwrap();
    let waits: Vec<u32> = (0..3)
        .map(|_| replay.wait_for_event("Code").unwrap())
        .collect();
    assert_eq!(
        replay.when_all(&waits, &mut Wait::default()),
        Ok(Some(vec![
            Outcome::Completed("1".into()),
            Outcome::Completed("2".into()),
            Outcome::Completed("3".into())
        ]))
    );
    assert_eq!(replay.now(), Some(at(2)));
}

#[test]
fn waiting_for_another_event_than_recorded_is_nondeterminism() {
    let recorded = history(&[
        (0, started()),
        (1, Event::OrchestratorStarted),
        (1, wait_started(0, "Approval")),
    ]);
    let mut replay = Replay::new(&recorded).unwrap();
    let error = replay.wait_for_event("Rejection").unwrap_err().to_string();
    assert!(
        error.contains("records wait-for-external-event(Approval)")
            && error.contains("now began wait-for-external-event(Rejection)"),
        "{error}"
    );
    let mut replay = Replay::new(&recorded).unwrap();
    let error = replay.create_timer(at(9)).unwrap_err().to_string();
    assert!(
        error.contains("records wait-for-external-event(Approval)"),
        "{error}"
    );
}

#[test]
fn when_any_of_an_event_and_a_timer_in_either_order() {
    // The E4 shape: a response or a timeout, whichever comes first.
    for (delivered, winner) in [(raised("Answer", "42"), 0), (timer_fired(1, 9), 1)] {
        let mut replay = Replay::new(&history(&[(0, started())])).unwrap();
        replay.begin_episode(at(1), []);
        let answer = replay.wait_for_event("Answer").unwrap();
        let timeout = replay.create_timer(at(9)).unwrap();
        let mut wait = Wait::default();
        assert_eq!(replay.when_any(&[answer, timeout], &mut wait), Ok(None));
        replay.take_pending();
        replay.begin_episode(at(10), [delivered]);
        assert_eq!(
            replay.when_any(&[answer, timeout], &mut wait),
            Ok(Some(winner))
        );
    }
}

#[test]
fn a_rewind_sets_unfired_timers_again_but_not_event_waits() {
    let recorded = history(&[
        (0, started()),
        (1, Event::OrchestratorStarted),
        (1, timer_created(0, 30)),
        (1, wait_started(1, "Go")),
        (1, scheduled(2, "Fail", "1")),
        (2, Event::OrchestratorStarted),
        (
            2,
            Event::TaskFailed {
                task_id: 2,
                message: "boom".into(),
            },
        ),
        (
            2,
            Event::ExecutionFailed {
                message: "boom".into(),
            },
        ),
    ]);
    assert_eq!(
        Replay::rewind_plan(&recorded).unwrap(),
        vec![timer_created(0, 30), scheduled(2, "Fail", "1")]
    );
}

fn sub_scheduled(task_id: u32, name: &str, id: &str) -> Event {
    Event::SubOrchestrationScheduled {
        task_id,
        name: name.into(),
        instance_id: id.into(),
        input: "1".into(),
    }
}

#[test]
fn a_sub_orchestration_gets_a_derived_id_and_completes_with_its_result() {
    let mut replay = Replay::new(&history(&[(0, started())])).unwrap();
    replay.begin_episode(at(1), []);
    let child = replay
        .call_sub_orchestrator("Child", "1", None, "parent")
        .unwrap();
    let named = replay
        .call_sub_orchestrator("Child", "1", Some("mine".into()), "parent")
        .unwrap();
    assert_eq!(
        replay.when_all(&[child, named], &mut Wait::default()),
        Ok(None)
    );
    assert_eq!(
        events_of(replay.take_pending().1),
        [
            Event::OrchestratorStarted,
            sub_scheduled(0, "Child", "parent:0"),
            sub_scheduled(1, "Child", "mine"),
        ]
    );
    // An activity's completion with the same task id is not the sub-orchestration's.
    replay.begin_episode(
        at(2),
        [
            completed(0, "99"),
            Event::SubOrchestrationCompleted {
                task_id: 0,
                result: "7".into(),
            },
            Event::SubOrchestrationFailed {
                task_id: 1,
                message: "boom".into(),
            },
        ],
    );
    assert_eq!(
        replay.when_all(&[child, named], &mut Wait::default()),
        Ok(Some(vec![
            Outcome::Completed("7".into()),
            Outcome::Failed("boom".into())
        ]))
    );
    assert_eq!(replay.task_name(named), Some("Child"));
}

#[test]
fn a_sub_orchestration_of_another_name_or_id_than_recorded_is_nondeterminism() {
    let recorded = history(&[
        (0, started()),
        (1, Event::OrchestratorStarted),
        (1, sub_scheduled(0, "Child", "parent:0")),
    ]);
    for (name, id) in [("Other", None), ("Child", Some("elsewhere".to_string()))] {
        let mut replay = Replay::new(&recorded).unwrap();
        let error = replay
            .call_sub_orchestrator(name, "1", id, "parent")
            .unwrap_err();
        assert!(
            matches!(&error, Error::NonDeterminism(n) if n.recorded.contains("call-sub-orchestrator Child")),
            "{error}"
        );
    }
    let mut same = Replay::new(&recorded).unwrap();
    assert_eq!(
        same.call_sub_orchestrator("Child", "1", None, "parent"),
        Ok(0)
    );
    // Nor is an activity in its place the same task.
    let mut activity = Replay::new(&recorded).unwrap();
    assert!(activity.call_activity("Child", "1", None).is_err());
}

#[test]
fn a_continued_execution_numbers_tasks_on_and_ignores_the_old_ones() {
    let recorded = history(&[
        (
            0,
            Event::ExecutionStarted {
                name: "Orch".into(),
                input: "1".into(),
                first_task: 5,
            },
        ),
        (0, raised("go", "\"carried\"")),
    ]);
    let mut replay = Replay::new(&recorded).unwrap();
    // Outcomes of the old execution's tasks 0 to 4 are dropped, not taken for new ones.
    replay.begin_episode(at(1), [completed(3, "old"), completed(5, "early")]);
    let task = replay.call_activity("A", "1", None).unwrap();
    assert_eq!(task, 5);
    assert_eq!(replay.when_all(&[task], &mut Wait::default()), Ok(None));
    assert_eq!(
        replay.when_all(&[3], &mut Wait::default()),
        Err(Error::UnknownTask(3))
    );
    // The carried event is there for the first wait.
    let wait = replay.wait_for_event("go").unwrap();
    assert_eq!(
        replay.when_all(&[wait], &mut Wait::default()),
        Ok(Some(vec![Outcome::Completed("\"carried\"".into())]))
    );
    assert_eq!(replay.next_task(), 7);
}

#[test]
fn untaken_events_are_what_a_continue_as_new_carries() {
    let mut replay = Replay::new(&history(&[(0, started())])).unwrap();
    replay.begin_episode(
        at(1),
        [raised("b", "1"), raised("a", "2"), raised("b", "3")],
    );
    let wait = replay.wait_for_event("b").unwrap();
    assert!(
        replay
            .when_all(&[wait], &mut Wait::default())
            .unwrap()
            .is_some()
    );
    assert_eq!(
        replay.untaken_events(),
        [
            ("a".to_string(), "2".to_string()),
            ("b".to_string(), "3".to_string())
        ]
    );
}

#[test]
fn the_history_weight_counts_recorded_and_new_events_and_forgets_empty_episodes() {
    let recorded = history(&[
        (0, started()),
        (1, Event::OrchestratorStarted),
        (1, scheduled(0, "List", "\"/r\"")),
    ]);
    let weight = |events: &[HistoryEvent]| events.iter().map(|e| e.event.weight()).sum::<usize>();
    let mut replay = Replay::new(&recorded).unwrap();
    assert_eq!(replay.history_bytes(), weight(&recorded));
    // An episode that delivers nothing and records nothing is dropped, weight and all.
    replay.begin_episode(at(2), []);
    assert_eq!(fan_out(&mut replay), Ok(None));
    let (_, events) = replay.take_pending();
    assert!(events.is_empty());
    assert_eq!(replay.history_bytes(), weight(&recorded));
    // New events count as they are made, before they are committed.
    let delivered = completed(0, "[\"a\",\"b\"]");
    let added = Event::OrchestratorStarted.weight() + delivered.weight();
    replay.begin_episode(at(3), [delivered]);
    assert_eq!(replay.history_bytes(), weight(&recorded) + added);
    assert!(
        added > 2 * 64,
        "every event weighs its fixed allowance and its texts"
    );
}

#[test]
fn a_when_all_over_its_byte_limit_fails_before_it_copies_a_result() {
    let result = format!("\"{}\"", "r".repeat(100));
    let recorded = history(&[
        (0, started()),
        (1, Event::OrchestratorStarted),
        (1, scheduled(0, "A", "1")),
        (2, Event::OrchestratorStarted),
        (2, completed(0, &result)),
    ]);
    let mut replay = Replay::new(&recorded).unwrap();
    let task = replay.call_activity("A", "1", None).unwrap();
    // Listed once it fits; listed a thousand times it is over 64 KiB.
    let once = replay.when_all(&[task], &mut Wait::limited(64 << 10));
    assert_eq!(once, Ok(Some(vec![Outcome::Completed(result.clone())])));
    let many = vec![task; 1000];
    assert!(matches!(
        replay.when_all(&many, &mut Wait::limited(64 << 10)),
        Err(Error::ResultsTooLarge { limit: 65536, .. })
    ));
    assert_eq!(
        replay
            .when_all(&many, &mut Wait::default())
            .map(|o| o.map(|o| o.len())),
        Ok(Some(1000)),
        "unlimited without a limit"
    );
}
