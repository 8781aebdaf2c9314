//! The dashboard's timeline of an instance, computed from its history alone: each task a
//! bar from when it was scheduled to when it ended (activities, durable timers, waits for
//! external events), its failed attempts marked, the instance's own events as marks, and
//! the progress of its activities. Pure: no I/O, no clock (the caller passes "now").
//!
//! [`rows`] bounds what is drawn: a history of 10,000 activities becomes at most a few
//! hundred rows, each standing for consecutive tasks, so the page stays small.

use crate::store::{Event, HistoryEvent};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};

/// What a bar stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Activity,
    Timer,
    /// A wait for an external event.
    Event,
    SubOrchestration,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Activity => "activity",
            Self::Timer => "timer",
            Self::Event => "event",
            Self::SubOrchestration => "sub-orchestration",
        }
    }
}

/// Where a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Completed,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

/// One task.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub task_id: u32,
    pub kind: Kind,
    /// The activity's, the event's or the sub-orchestration's name; empty for a timer.
    pub name: String,
    /// A sub-orchestration's instance id.
    pub child: Option<String>,
    pub start: DateTime<Utc>,
    /// When it completed or failed; `None` while pending.
    pub end: Option<DateTime<Utc>>,
    pub outcome: Outcome,
    /// When each failed attempt before the last was recorded (retries, and failures a
    /// rewind set aside).
    pub retries: Vec<DateTime<Utc>>,
    /// The failure's message, for a failed task.
    pub message: Option<String>,
}

/// Something that happened to the instance as a whole (an event raised, a suspension,
/// its end), drawn as a mark across the timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    pub at: DateTime<Utc>,
    /// The history event's type, e.g. `EventRaised`.
    pub kind: &'static str,
    /// The event's name, or the reason or message given.
    pub label: String,
}

/// How far an instance's activities and sub-orchestrations are (its fan-outs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub scheduled: usize,
    pub completed: usize,
    pub failed: usize,
    pub pending: usize,
}

/// An instance's timeline.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    /// In the order the tasks were scheduled.
    pub bars: Vec<Bar>,
    pub marks: Vec<Mark>,
    pub progress: Progress,
    /// The first and the last timestamp of the history.
    pub span: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The message of the instance's failure, if it failed and was not rewound since.
    pub failure: Option<String>,
}

/// Builds the timeline of `history`. Tasks that never ended are pending.
pub fn build(history: &[HistoryEvent]) -> Timeline {
    let mut timeline = Timeline::default();
    // Where each task's bar is in `bars`.
    let mut index: HashMap<u32, usize> = HashMap::new();
    // Waits for external events not yet given an event, and events not yet taken by a
    // wait, by name: replay pairs them in order, and so does this.
    let mut waits: HashMap<&str, VecDeque<usize>> = HashMap::new();
    let mut raised: HashMap<&str, VecDeque<DateTime<Utc>>> = HashMap::new();
    for entry in history {
        let at = entry.timestamp;
        timeline.span = Some(match timeline.span {
            None => (at, at),
            Some((first, last)) => (first.min(at), last.max(at)),
        });
        let mut push = |task_id: u32, kind: Kind, name: &str| {
            let bar = Bar {
                task_id,
                kind,
                name: name.to_string(),
                child: None,
                start: at,
                end: None,
                outcome: Outcome::Pending,
                retries: Vec::new(),
                message: None,
            };
            index.insert(task_id, timeline.bars.len());
            timeline.bars.push(bar);
            timeline.bars.len() - 1
        };
        match &entry.event {
            Event::TaskScheduled { task_id, name, .. } => {
                push(*task_id, Kind::Activity, name);
            }
            Event::TimerCreated { task_id, .. } => {
                push(*task_id, Kind::Timer, "");
            }
            Event::SubOrchestrationScheduled {
                task_id,
                name,
                instance_id,
                ..
            } => {
                let at_bar = push(*task_id, Kind::SubOrchestration, name);
                timeline.bars[at_bar].child = Some(instance_id.clone());
            }
            Event::EventWaitStarted { task_id, name } => {
                let at_bar = push(*task_id, Kind::Event, name);
                match raised.get_mut(name.as_str()).and_then(VecDeque::pop_front) {
                    // An event raised before the wait began: taken at once.
                    Some(_) => finish(&mut timeline.bars[at_bar], at, Outcome::Completed),
                    None => waits.entry(name).or_default().push_back(at_bar),
                }
            }
            Event::EventRaised { name, .. } => {
                match waits.get_mut(name.as_str()).and_then(VecDeque::pop_front) {
                    Some(at_bar) => finish(&mut timeline.bars[at_bar], at, Outcome::Completed),
                    None => raised.entry(name).or_default().push_back(at),
                }
                timeline.marks.push(Mark {
                    at,
                    kind: "EventRaised",
                    label: name.clone(),
                });
            }
            Event::TaskCompleted { task_id, .. }
            | Event::TimerFired { task_id, .. }
            | Event::SubOrchestrationCompleted { task_id, .. } => {
                if let Some(&at_bar) = index.get(task_id) {
                    finish(&mut timeline.bars[at_bar], at, Outcome::Completed);
                }
            }
            Event::TaskFailed { task_id, message }
            | Event::SubOrchestrationFailed { task_id, message } => {
                if let Some(&at_bar) = index.get(task_id) {
                    let bar = &mut timeline.bars[at_bar];
                    finish(bar, at, Outcome::Failed);
                    bar.message = Some(message.clone());
                }
            }
            Event::TaskRetrying { task_id, .. } => {
                if let Some(&at_bar) = index.get(task_id) {
                    timeline.bars[at_bar].retries.push(at);
                }
            }
            Event::ExecutionRewound { reason } => {
                // The failed tasks run again: their failure becomes a marked attempt.
                for bar in &mut timeline.bars {
                    if bar.outcome == Outcome::Failed {
                        if let Some(end) = bar.end.take() {
                            bar.retries.push(end);
                        }
                        bar.outcome = Outcome::Pending;
                        bar.message = None;
                    }
                }
                timeline.failure = None;
                timeline.marks.push(mark(at, "ExecutionRewound", reason));
            }
            Event::ExecutionFailed { message } => {
                timeline.failure = Some(message.clone());
                timeline.marks.push(mark(at, "ExecutionFailed", message));
            }
            Event::ExecutionSuspended { reason } => {
                timeline.marks.push(mark(at, "ExecutionSuspended", reason));
            }
            Event::ExecutionResumed { reason } => {
                timeline.marks.push(mark(at, "ExecutionResumed", reason));
            }
            Event::ExecutionTerminated { reason } => {
                timeline.marks.push(mark(at, "ExecutionTerminated", reason));
            }
            Event::ExecutionCompleted { .. } => {
                timeline.marks.push(mark(at, "ExecutionCompleted", ""));
            }
            Event::ExecutionStarted { .. } | Event::OrchestratorStarted => {}
        }
    }
    let counted = |bar: &&Bar| matches!(bar.kind, Kind::Activity | Kind::SubOrchestration);
    for bar in timeline.bars.iter().filter(counted) {
        let progress = &mut timeline.progress;
        progress.scheduled += 1;
        match bar.outcome {
            Outcome::Pending => progress.pending += 1,
            Outcome::Completed => progress.completed += 1,
            Outcome::Failed => progress.failed += 1,
        }
    }
    timeline
}

fn finish(bar: &mut Bar, at: DateTime<Utc>, outcome: Outcome) {
    bar.end = Some(at.max(bar.start));
    bar.outcome = outcome;
}

fn mark(at: DateTime<Utc>, kind: &'static str, label: &str) -> Mark {
    Mark {
        at,
        kind,
        label: label.to_string(),
    }
}

/// One drawn row: a task, or a run of consecutive tasks when there are too many to draw
/// one by one.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Indexes into [`Timeline::bars`], first and last (inclusive).
    pub first: usize,
    pub last: usize,
    /// The kind shared by every task of the row, or `None` for a mix.
    pub kind: Option<Kind>,
    /// The name shared by every task of the row, or empty.
    pub name: String,
    pub start: DateTime<Utc>,
    /// The latest end, or `None` if a task of the row is pending.
    pub end: Option<DateTime<Utc>>,
    /// The worst outcome in the row: failed over pending over completed.
    pub outcome: Outcome,
    pub completed: usize,
    pub failed: usize,
    pub pending: usize,
    /// The failed attempts marked on the row's tasks.
    pub retries: Vec<DateTime<Utc>>,
}

impl Row {
    pub fn tasks(&self) -> usize {
        self.last - self.first + 1
    }
}

/// At most `max_rows` rows (at least one) for the bars of `timeline`: one per task when
/// they fit, else runs of equal length of consecutive tasks. Each row keeps its tasks'
/// counts, and the rows keep about `max_rows` retry marks between them (at least one
/// each), so what is drawn is bounded however many tasks and retries there are.
pub fn rows(timeline: &Timeline, max_rows: usize) -> Vec<Row> {
    let bars = &timeline.bars;
    if bars.is_empty() {
        return Vec::new();
    }
    let per_row = bars.len().div_ceil(max_rows.max(1));
    let retries_per_row = max_rows.div_ceil(bars.len().div_ceil(per_row)).max(1);
    bars.chunks(per_row)
        .enumerate()
        .map(|(chunk_index, chunk)| {
            let first = chunk_index * per_row;
            let mut row = Row {
                first,
                last: first + chunk.len() - 1,
                kind: Some(chunk[0].kind),
                name: chunk[0].name.clone(),
                start: chunk[0].start,
                end: chunk[0].end,
                outcome: Outcome::Completed,
                completed: 0,
                failed: 0,
                pending: 0,
                retries: Vec::new(),
            };
            for bar in chunk {
                if row.kind != Some(bar.kind) {
                    row.kind = None;
                }
                if row.name != bar.name {
                    row.name.clear();
                }
                row.start = row.start.min(bar.start);
                row.end = match (row.end, bar.end) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
                match bar.outcome {
                    Outcome::Completed => row.completed += 1,
                    Outcome::Failed => row.failed += 1,
                    Outcome::Pending => row.pending += 1,
                }
                let room = retries_per_row.saturating_sub(row.retries.len());
                row.retries.extend(bar.retries.iter().take(room));
            }
            row.outcome = if row.failed > 0 {
                Outcome::Failed
            } else if row.pending > 0 {
                Outcome::Pending
            } else {
                Outcome::Completed
            };
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(second: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + second, 0)
            .single()
            .unwrap_or_default()
    }

    fn history(events: Vec<(i64, Event)>) -> Vec<HistoryEvent> {
        events
            .into_iter()
            .enumerate()
            .map(|(seq, (second, event))| HistoryEvent {
                seq: seq as u64,
                timestamp: at(second),
                event,
            })
            .collect()
    }

    fn scheduled(task_id: u32, name: &str) -> Event {
        Event::TaskScheduled {
            task_id,
            name: name.to_string(),
            input: "null".to_string(),
            retry: None,
        }
    }

    fn completed(task_id: u32) -> Event {
        Event::TaskCompleted {
            task_id,
            result: "1".to_string(),
        }
    }

    fn failed(task_id: u32) -> Event {
        Event::TaskFailed {
            task_id,
            message: format!("task {task_id} failed"),
        }
    }

    #[test]
    fn activities_pair_schedules_with_their_outcomes() {
        let timeline = build(&history(vec![
            (0, Event::OrchestratorStarted),
            (0, scheduled(0, "Copy")),
            (0, scheduled(1, "Copy")),
            (0, scheduled(2, "Copy")),
            (3, completed(1)),
            (
                4,
                Event::TaskRetrying {
                    task_id: 0,
                    attempt: 1,
                    message: "flaky".to_string(),
                    retry_at: at(5),
                },
            ),
            (6, completed(0)),
            (7, failed(2)),
        ]));
        assert_eq!(timeline.bars.len(), 3);
        let copy0 = &timeline.bars[0];
        assert_eq!(
            (copy0.start, copy0.end, copy0.outcome),
            (at(0), Some(at(6)), Outcome::Completed)
        );
        assert_eq!(copy0.retries, vec![at(4)]);
        assert_eq!(timeline.bars[1].end, Some(at(3)));
        assert_eq!(timeline.bars[2].outcome, Outcome::Failed);
        assert_eq!(timeline.bars[2].message.as_deref(), Some("task 2 failed"));
        assert_eq!(
            timeline.progress,
            Progress {
                scheduled: 3,
                completed: 2,
                failed: 1,
                pending: 0
            }
        );
        assert_eq!(timeline.span, Some((at(0), at(7))));
    }

    #[test]
    fn unfinished_tasks_are_pending_and_timers_and_events_are_bars() {
        let timeline = build(&history(vec![
            (0, scheduled(0, "Sleep")),
            (
                0,
                Event::TimerCreated {
                    task_id: 1,
                    fire_at: at(10),
                },
            ),
            (
                1,
                Event::EventRaised {
                    name: "Early".to_string(),
                    input: "1".to_string(),
                },
            ),
            (
                2,
                Event::EventWaitStarted {
                    task_id: 2,
                    name: "Approval".to_string(),
                },
            ),
            (
                3,
                Event::EventWaitStarted {
                    task_id: 3,
                    name: "Early".to_string(),
                },
            ),
            (
                10,
                Event::TimerFired {
                    task_id: 1,
                    fire_at: at(10),
                },
            ),
            (
                12,
                Event::EventRaised {
                    name: "Approval".to_string(),
                    input: "true".to_string(),
                },
            ),
        ]));
        let kinds: Vec<_> = timeline.bars.iter().map(|bar| bar.kind).collect();
        assert_eq!(
            kinds,
            vec![Kind::Activity, Kind::Timer, Kind::Event, Kind::Event]
        );
        assert_eq!(timeline.bars[0].outcome, Outcome::Pending);
        assert_eq!(timeline.bars[0].end, None);
        assert_eq!(timeline.bars[1].end, Some(at(10)));
        // The wait for Approval ends when it is raised; the one for Early had its event
        // already, so it ends as it begins.
        assert_eq!(timeline.bars[2].end, Some(at(12)));
        assert_eq!(timeline.bars[3].end, Some(at(3)));
        assert_eq!(timeline.marks.len(), 2);
        assert_eq!(timeline.progress.pending, 1);
        assert_eq!(timeline.progress.scheduled, 1);
    }

    #[test]
    fn sub_orchestrations_are_bars_that_name_their_instance() {
        let timeline = build(&history(vec![
            (
                0,
                Event::SubOrchestrationScheduled {
                    task_id: 0,
                    name: "Child".to_string(),
                    instance_id: "parent:0".to_string(),
                    input: "null".to_string(),
                },
            ),
            (
                0,
                Event::SubOrchestrationScheduled {
                    task_id: 1,
                    name: "Child".to_string(),
                    instance_id: "parent:1".to_string(),
                    input: "null".to_string(),
                },
            ),
            (
                2,
                Event::SubOrchestrationCompleted {
                    task_id: 0,
                    result: "1".to_string(),
                },
            ),
            (
                3,
                Event::SubOrchestrationFailed {
                    task_id: 1,
                    message: "child failed".to_string(),
                },
            ),
        ]));
        let bars = &timeline.bars;
        assert_eq!(bars[0].kind, Kind::SubOrchestration);
        assert_eq!(bars[0].child.as_deref(), Some("parent:0"));
        assert_eq!(
            (bars[0].outcome, bars[0].end),
            (Outcome::Completed, Some(at(2)))
        );
        assert_eq!(bars[1].outcome, Outcome::Failed);
        assert_eq!(bars[1].message.as_deref(), Some("child failed"));
        assert_eq!(
            timeline.progress,
            Progress {
                scheduled: 2,
                completed: 1,
                failed: 1,
                pending: 0
            }
        );
    }

    #[test]
    fn a_rewind_turns_failures_into_marked_attempts() {
        let timeline = build(&history(vec![
            (0, scheduled(0, "Copy")),
            (1, failed(0)),
            (
                2,
                Event::ExecutionFailed {
                    message: "boom".to_string(),
                },
            ),
        ]));
        assert_eq!(timeline.failure.as_deref(), Some("boom"));
        let rewound = build(&history(vec![
            (0, scheduled(0, "Copy")),
            (1, failed(0)),
            (
                2,
                Event::ExecutionFailed {
                    message: "boom".to_string(),
                },
            ),
            (
                3,
                Event::ExecutionRewound {
                    reason: "fixed".to_string(),
                },
            ),
            (5, completed(0)),
        ]));
        assert_eq!(rewound.failure, None);
        let bar = &rewound.bars[0];
        assert_eq!(bar.outcome, Outcome::Completed);
        assert_eq!(bar.retries, vec![at(1)]);
        assert_eq!(bar.message, None);
        assert_eq!(rewound.progress.completed, 1);
    }

    #[test]
    fn rows_are_one_per_task_when_they_fit_and_bounded_otherwise() {
        let mut events = Vec::new();
        for task in 0..10_000u32 {
            events.push((0, scheduled(task, "Copy")));
        }
        for task in 0..10_000u32 {
            let event = if task == 4_321 {
                failed(task)
            } else if task >= 9_990 {
                continue;
            } else {
                completed(task)
            };
            events.push((1 + i64::from(task % 7), event));
        }
        let timeline = build(&history(events));
        assert_eq!(timeline.progress.failed, 1);
        assert_eq!(timeline.progress.pending, 10);

        let small = rows(&timeline, 20_000);
        assert_eq!(small.len(), 10_000);
        assert!(small.iter().all(|row| row.tasks() == 1));

        let bounded = rows(&timeline, 300);
        assert!(bounded.len() <= 300, "{} rows", bounded.len());
        assert_eq!(bounded.iter().map(Row::tasks).sum::<usize>(), 10_000);
        let failed: Vec<_> = bounded
            .iter()
            .filter(|row| row.outcome == Outcome::Failed)
            .collect();
        assert_eq!(failed.len(), 1);
        assert!(failed[0].first <= 4_321 && 4_321 <= failed[0].last);
        let last = bounded.last().map(|row| (row.outcome, row.end));
        assert_eq!(last, Some((Outcome::Pending, None)));
        assert_eq!(bounded.iter().map(|row| row.pending).sum::<usize>(), 10);
        assert!(bounded.iter().all(|row| row.name == "Copy"));
        assert_eq!(rows(&Timeline::default(), 300), Vec::new());
    }

    #[test]
    fn retry_marks_are_bounded_too() {
        let mut events = vec![(0, scheduled(0, "Flaky")), (0, scheduled(1, "Flaky"))];
        for attempt in 1..=5_000u32 {
            events.push((
                1,
                Event::TaskRetrying {
                    task_id: attempt % 2,
                    attempt,
                    message: "again".to_string(),
                    retry_at: at(2),
                },
            ));
        }
        let timeline = build(&history(events));
        assert_eq!(timeline.bars[0].retries.len(), 2_500);
        let drawn = rows(&timeline, 200);
        assert_eq!(drawn.len(), 2);
        let marks: usize = drawn.iter().map(|row| row.retries.len()).sum();
        assert!((2..=200).contains(&marks), "{marks} retry marks");
    }
}
