//! The dashboard's HTML, rendered with `maud` (which escapes every value it inserts):
//! the layout, the login page, the instances page and its live table body, an
//! instance's page and its live part (status, progress, payloads, timeline), the raw
//! history, the confirmation pages of the controls, and the error page.

use super::actions::Action;
use super::timeline::{self, Kind, Outcome, Row, Timeline};
use super::{Visit, html, instance_path};
use crate::api::Error;
use crate::api::instances::{Payloads, page_of};
use crate::store::{HistoryEvent, Instance, InstanceFilter, RuntimeStatus};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{DOCTYPE, Markup, html};
use tokio::sync::SemaphorePermit;

/// Instances per page by default, and at most.
const PAGE: usize = 50;
const MAX_PAGE: usize = 500;
/// History events per page of the raw history.
const HISTORY_PAGE: usize = 100;
/// The most rows the timeline draws; more tasks share rows.
const MAX_ROWS: usize = 200;
/// The most instance events (raised events, suspensions, ...) drawn as marks.
const MAX_MARKS: usize = 200;
/// The most failed tasks listed by name and message.
const MAX_FAILED_LISTED: usize = 100;
/// The most of a payload shown; the rest is cut, and said to be.
const MAX_SHOWN: usize = 64 * 1024;
/// The timeline's drawing width, in its own units (it is scaled to the page).
const WIDTH: f64 = 1000.0;

fn layout(title: &str, signed_in: bool, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Weft" }
                link rel="stylesheet" href="/ui/assets/dashboard.css";
                @if signed_in {
                    script src="/ui/assets/dashboard.js" defer {}
                }
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href="/" { "Weft" }
                    @if signed_in {
                        nav aria-label="Main" {
                            a href="/" { "Instances" }
                        }
                        form class="logout" method="post" action="/ui/logout" {
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    (content)
                }
            }
        }
    }
}

/// The login page, with the reason the last attempt failed.
pub fn login(error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        false,
        html! {
            h1 { "Sign in to Weft" }
            form class="login" method="post" action="/ui/login" {
                @if let Some(error) = error {
                    p class="error" role="alert" id="login-error" { (error) }
                }
                label for="key" { "API key" }
                input id="key" type="password" name="key" autocomplete="current-password"
                    required autofocus aria-describedby="key-help";
                p id="key-help" class="help" {
                    "The key that " code { "weft serve" } " prints as " code { "key: ..." }
                    " (kept in the data dir's " code { "api-key" } " file). It is kept in a cookie that scripts cannot read."
                }
                button type="submit" { "Sign in" }
            }
        },
    )
}

pub fn error(error: &Error) -> Markup {
    let status = error.status();
    layout(
        "Error",
        true,
        html! {
            h1 { "Request refused" }
            p class="error" role="alert" {
                (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) ": " (error)
            }
            p { a href="/" { "Back to the instances" } }
        },
    )
}

/// The instances page's filter and page, read from its query string.
struct ListQuery {
    statuses: Vec<RuntimeStatus>,
    name: String,
    prefix: String,
    skip: usize,
    size: usize,
}

impl ListQuery {
    fn read(visit: &Visit) -> Self {
        let query = &visit.query;
        let statuses = query
            .all("status")
            .into_iter()
            .flat_map(|value| value.split(','))
            .filter_map(RuntimeStatus::parse)
            .collect();
        Self {
            statuses,
            name: query.get("name").unwrap_or_default().to_string(),
            prefix: query.get("prefix").unwrap_or_default().to_string(),
            skip: query.get("skip").and_then(|v| v.parse().ok()).unwrap_or(0),
            size: query
                .get("size")
                .and_then(|v| v.parse().ok())
                .unwrap_or(PAGE)
                .clamp(1, MAX_PAGE),
        }
    }

    /// The query string of this filter at offset `skip`.
    fn encode(&self, skip: usize) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for status in &self.statuses {
            query.append_pair("status", status.as_str());
        }
        if !self.name.is_empty() {
            query.append_pair("name", &self.name);
        }
        if !self.prefix.is_empty() {
            query.append_pair("prefix", &self.prefix);
        }
        if skip > 0 {
            query.append_pair("skip", &skip.to_string());
        }
        if self.size != PAGE {
            query.append_pair("size", &self.size.to_string());
        }
        query.finish()
    }

    /// The page and the offset of the next one, through the list route's own paging.
    async fn fetch(&self, visit: &Visit) -> Result<(Vec<Instance>, Option<usize>), Error> {
        let filter = InstanceFilter {
            statuses: self.statuses.clone(),
            id_prefix: self.prefix.clone(),
            name_contains: self.name.clone(),
            ..InstanceFilter::default()
        };
        page_of(
            &visit.api.runtime,
            &filter,
            self.skip,
            self.size,
            Payloads::None,
        )
        .await
    }
}

/// `GET /`: the instances page.
pub async fn instances(visit: &Visit) -> Result<Response, Error> {
    let query = ListQuery::read(visit);
    let (page, next) = query.fetch(visit).await?;
    let purged = visit.query.get("done") == Some("purge");
    let link = |skip: usize| {
        let encoded = query.encode(skip);
        if encoded.is_empty() {
            "/".to_string()
        } else {
            format!("/?{encoded}")
        }
    };
    let content = html! {
        h1 { "Instances" }
        @if purged {
            p class="notice" role="status" { "The instance was purged." }
        }
        form class="filters" method="get" action="/" role="search" aria-label="Filter instances" {
            fieldset {
                legend { "Status" }
                @for status in RuntimeStatus::ALL {
                    label class="check" {
                        input type="checkbox" name="status" value=(status.as_str())
                            checked[query.statuses.contains(&status)];
                        (status_badge(status))
                    }
                }
            }
            div class="field" {
                label for="name" { "Name contains" }
                input id="name" type="text" name="name" value=(query.name);
            }
            div class="field" {
                label for="prefix" { "Id starts with" }
                input id="prefix" type="text" name="prefix" value=(query.prefix);
            }
            div class="buttons" {
                button type="submit" { "Filter" }
                a href="/" { "Clear filters" }
            }
        }
        table class="instances" {
            caption { "Instances, newest first; the table updates while this page is open." }
            thead {
                tr {
                    th scope="col" { "Name" }
                    th scope="col" { "Id" }
                    th scope="col" { "Status" }
                    th scope="col" { "Created" }
                    th scope="col" { "Updated" }
                    th scope="col" { "Duration" }
                }
            }
            (rows_body(&page, &format!("/ui/rows?{}", query.encode(query.skip))))
        }
        nav class="pages" aria-label="Pages of instances" {
            @if query.skip > 0 {
                a href=(link(0)) { "Newest" }
                " "
                a href=(link(query.skip.saturating_sub(query.size))) rel="prev" { "Newer" }
            }
            @if let Some(next) = next {
                " "
                a href=(link(next)) rel="next" { "Older" }
            }
        }
    };
    Ok(html(StatusCode::OK, layout("Instances", true, content)))
}

/// `GET /ui/rows`: the instances table body alone, for the page's live updates.
pub async fn rows(visit: &Visit) -> Result<Response, Error> {
    let query = ListQuery::read(visit);
    let (page, _) = query.fetch(visit).await?;
    let source = format!("/ui/rows?{}", query.encode(query.skip));
    Ok(html(StatusCode::OK, rows_body(&page, &source)))
}

fn rows_body(page: &[Instance], source: &str) -> Markup {
    let now = Utc::now();
    html! {
        tbody id="rows" data-live-src=(source) data-live-active="true" {
            @if page.is_empty() {
                tr { td colspan="6" { "No instances." } }
            }
            @for instance in page {
                tr data-id=(instance.id) {
                    td { a href=(instance_path(&instance.id)) { (instance.name) } }
                    td { code { (instance.id) } }
                    td class="status-cell" { (status_badge(instance.status)) }
                    td { (time(instance.created)) }
                    td { (time(instance.updated)) }
                    td { (duration(instance_duration(instance, now))) }
                }
            }
        }
    }
}

fn status_badge(status: RuntimeStatus) -> Markup {
    html! {
        span class=(format!("status status-{}", status.as_str().to_lowercase())) {
            (status.as_str())
        }
    }
}

fn time(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339_opts(SecondsFormat::Millis, true)) {
            (at.format("%Y-%m-%d %H:%M:%S UTC"))
        }
    }
}

/// How long an instance ran: to its last update once ended, to now while it runs.
fn instance_duration(instance: &Instance, now: DateTime<Utc>) -> chrono::Duration {
    let end = if instance.status.is_terminal() {
        instance.updated
    } else {
        now.max(instance.updated)
    };
    end - instance.created
}

fn duration(span: chrono::Duration) -> String {
    let ms = span.num_milliseconds().max(0);
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let seconds = ms / 1000;
    match seconds {
        0..60 => format!("{:.1} s", ms as f64 / 1000.0),
        60..3600 => format!("{}m {:02}s", seconds / 60, seconds % 60),
        _ => format!(
            "{}h {:02}m {:02}s",
            seconds / 3600,
            (seconds / 60) % 60,
            seconds % 60
        ),
    }
}

/// A JSON payload, pretty-printed, cut at [`MAX_SHOWN`] bytes.
fn payload(text: &str) -> Markup {
    let pretty = if text.len() <= MAX_SHOWN {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|value| serde_json::to_string_pretty(&value).ok())
    } else {
        None
    };
    let shown = pretty.as_deref().unwrap_or(text);
    let (shown, cut) = cut(shown, MAX_SHOWN);
    html! {
        pre class="payload" { (shown) }
        @if cut {
            p class="help" { "Cut at " (MAX_SHOWN / 1024) " KiB of " (text.len()) " bytes; the API has the whole payload." }
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary, and whether it was cut.
fn cut(text: &str, max: usize) -> (&str, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

/// The instance and its whole history, with the turn to read it (see
/// `Api::history_turn`), to hold until the page is built.
async fn load<'a>(
    visit: &'a Visit,
    id: &str,
) -> Result<(SemaphorePermit<'a>, Instance, Vec<HistoryEvent>), Error> {
    let turn = visit.api.history_turn().await?;
    let store = visit.api.runtime.store();
    let instance = store
        .instance(id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no instance with id '{id}'")))?;
    let history = store.history(id).await?;
    Ok((turn, instance, history))
}

/// `GET /ui/instances/{id}`: the instance, its live part, its input, its controls and a
/// page of its raw history.
pub async fn instance(visit: &Visit, id: &str) -> Result<Response, Error> {
    let (_turn, instance, history) = load(visit, id).await?;
    let done = visit.query.get("done").and_then(Action::parse);
    let pages = history.len().div_ceil(HISTORY_PAGE).max(1);
    let history_page = visit
        .query
        .get("hpage")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let path = instance_path(&instance.id);
    let first = (history_page - 1) * HISTORY_PAGE;
    let shown = &history[first.min(history.len())..(first + HISTORY_PAGE).min(history.len())];
    let content = html! {
        nav class="crumbs" aria-label="Breadcrumb" {
            a href="/" { "Instances" } " › " span aria-current="page" { (instance.name) }
        }
        h1 { (instance.name) " " code class="id" { (instance.id) } }
        @if let Some(done) = done {
            p class="notice" role="status" {
                (done.label()) " requested. The page shows it once the instance has acted on it."
            }
        }
        (live_section(&instance, &history))
        section aria-labelledby="input-heading" {
            h2 id="input-heading" { "Input" }
            (payload(&instance.input))
        }
        section aria-labelledby="controls-heading" {
            h2 id="controls-heading" { "Controls" }
            ul class="controls" {
                @for action in Action::ALL.into_iter().filter(|a| a.applies(instance.status)) {
                    li {
                        a class=(format!("button action-{}", action.slug()))
                            href=(format!("{path}/confirm/{}", action.slug())) {
                            (action.label()) "…"
                        }
                    }
                }
            }
        }
        section aria-labelledby="history-heading" {
            h2 id="history-heading" { "History" }
            p {
                "Events " (first + usize::from(!shown.is_empty())) "–" (first + shown.len())
                " of " (history.len()) ", page " (history_page) " of " (pages) "."
            }
            table class="history" {
                thead {
                    tr {
                        th scope="col" { "#" }
                        th scope="col" { "Time" }
                        th scope="col" { "Event" }
                        th scope="col" { "Task" }
                        th scope="col" { "Details" }
                    }
                }
                tbody {
                    @for entry in shown {
                        (history_row(entry))
                    }
                }
            }
            nav class="pages" aria-label="Pages of the history" {
                @if history_page > 1 {
                    a href=(format!("{path}?hpage=1#history-heading")) { "First" } " "
                    a href=(format!("{path}?hpage={}#history-heading", history_page - 1)) rel="prev" { "Previous" }
                }
                @if history_page < pages {
                    " "
                    a href=(format!("{path}?hpage={}#history-heading", history_page + 1)) rel="next" { "Next" } " "
                    a href=(format!("{path}?hpage={pages}#history-heading")) { "Last" }
                }
            }
        }
    };
    Ok(html(StatusCode::OK, layout(&instance.name, true, content)))
}

/// `GET /ui/instances/{id}/live`: the live part alone, for the page's updates.
pub async fn live(visit: &Visit, id: &str) -> Result<Response, Error> {
    let (_turn, instance, history) = load(visit, id).await?;
    Ok(html(StatusCode::OK, live_section(&instance, &history)))
}

fn live_section(instance: &Instance, history: &[HistoryEvent]) -> Markup {
    let now = Utc::now();
    let timeline = timeline::build(history);
    let progress = timeline.progress;
    let active = !instance.status.is_terminal();
    html! {
        section id="live" aria-labelledby="summary-heading"
            data-live-src=(format!("{}/live", instance_path(&instance.id)))
            data-live-active=(if active { "true" } else { "false" }) {
            h2 id="summary-heading" { "Summary" }
            dl class="summary" {
                dt { "Status" }
                dd id="status" { (status_badge(instance.status)) }
                dt { "Created" }
                dd { (time(instance.created)) }
                dt { "Last updated" }
                dd { (time(instance.updated)) }
                dt { "Duration" }
                dd { (duration(instance_duration(instance, now))) }
            }
            @if progress.scheduled > 0 {
                h3 id="progress-heading" { "Progress" }
                p id="progress-text" {
                    (progress.completed) " completed, " (progress.failed) " failed, "
                    (progress.pending) " pending of " (progress.scheduled) " scheduled"
                    @if timeline.bars.iter().any(|bar| bar.kind == Kind::SubOrchestration) {
                        " (activities and sub-orchestrations)"
                    }
                }
                progress id="progress" max=(progress.scheduled)
                    value=(progress.completed + progress.failed)
                    aria-labelledby="progress-heading" aria-describedby="progress-text" {
                    (progress.completed + progress.failed) " of " (progress.scheduled)
                }
            }
            @if let Some(failure) = &timeline.failure {
                h3 { "Failure" }
                pre class="payload failure" id="failure" { (cut(failure, MAX_SHOWN).0) }
            }
            @if let Some(output) = &instance.output {
                h3 { "Output" }
                div id="output" { (payload(output)) }
            }
            @if let Some(custom) = &instance.custom_status {
                h3 { "Custom status" }
                div id="custom-status" { (payload(custom)) }
            }
            h3 id="timeline-heading" { "Timeline" }
            (timeline_figure(&timeline, instance, now))
        }
    }
}

/// Where time `at` falls on the timeline from `start` lasting `total_ms`.
fn x(at: DateTime<Utc>, start: DateTime<Utc>, total_ms: f64) -> f64 {
    ((at - start).num_milliseconds() as f64 / total_ms * WIDTH).clamp(0.0, WIDTH)
}

fn timeline_figure(timeline: &Timeline, instance: &Instance, now: DateTime<Utc>) -> Markup {
    let Some((start, last)) = timeline.span else {
        return html! { p { "No history yet." } };
    };
    let end = if instance.status.is_terminal() {
        last
    } else {
        now.max(last)
    };
    let total_ms = ((end - start).num_milliseconds() as f64).max(1.0);
    let rows = timeline::rows(timeline, MAX_ROWS);
    let row_height = if rows.len() > 50 { 5.0 } else { 12.0 };
    let height = (rows.len().max(1) as f64 * row_height).ceil();
    let tasks = timeline.bars.len();
    let per_row = rows.first().map_or(1, Row::tasks);
    let failed: Vec<_> = timeline
        .bars
        .iter()
        .filter(|bar| bar.outcome == Outcome::Failed)
        .collect();
    let children: Vec<_> = timeline
        .bars
        .iter()
        .filter(|bar| bar.child.is_some())
        .collect();
    html! {
        figure class="timeline" {
            figcaption id="timeline-caption" {
                (tasks) " tasks from " (time(start)) " over " (duration(end - start)) "; "
                @if per_row > 1 {
                    "each row stands for " (per_row) " consecutive tasks (coloured by the worst among them)."
                } @else {
                    "one row per task, in the order they were scheduled."
                }
                @if timeline.marks.len() > MAX_MARKS {
                    " The first " (MAX_MARKS) " of " (timeline.marks.len()) " instance events are marked."
                }
            }
            svg class="chart" role="img" aria-labelledby="timeline-caption"
                viewBox=(format!("0 0 {WIDTH} {height}")) preserveAspectRatio="none"
                width="100%" height=(height) {
                @for (index, row) in rows.iter().enumerate() {
                    @let y = index as f64 * row_height;
                    @let x0 = x(row.start, start, total_ms);
                    @let x1 = x(row.end.unwrap_or(end), start, total_ms);
                    @let kind = row.kind.map_or("mixed", Kind::as_str);
                    rect class=(format!("bar {kind} {}", row.outcome.as_str()))
                        data-name=(row.name) data-tasks=(row.tasks())
                        x=(format!("{x0:.2}")) y=(format!("{:.1}", y + 1.0))
                        width=(format!("{:.2}", (x1 - x0).max(2.0))) height=(format!("{:.1}", row_height - 2.0)) {
                        title { (row_title(timeline, row)) }
                    }
                    @for retry in &row.retries {
                        rect class="retry" x=(format!("{:.2}", x(*retry, start, total_ms))) y=(format!("{y:.1}"))
                            width="2" height=(format!("{row_height:.1}")) {
                            title { "a failed attempt" }
                        }
                    }
                }
                @for mark in timeline.marks.iter().take(MAX_MARKS) {
                    @let at = format!("{:.2}", x(mark.at, start, total_ms));
                    line class=(format!("mark {}", mark.kind)) x1=(at) x2=(at) y1="0" y2=(height) {
                        title { (mark.kind) @if !mark.label.is_empty() { ": " (cut(&mark.label, 200).0) } }
                    }
                }
            }
            ol class="axis" aria-label="Time since the start" {
                @for quarter in 0..=4u32 {
                    li { "+" (duration(chrono::Duration::milliseconds((total_ms * f64::from(quarter) / 4.0) as i64))) }
                }
            }
            ul class="legend" aria-label="Legend" {
                li { span aria-hidden="true" class="swatch completed" {} "completed" }
                li { span aria-hidden="true" class="swatch pending" {} "pending" }
                li { span aria-hidden="true" class="swatch failed" {} "failed" }
                li { span aria-hidden="true" class="swatch timer" {} "timer" }
                li { span aria-hidden="true" class="swatch event" {} "event wait" }
                li { span aria-hidden="true" class="swatch sub-orchestration" {} "sub-orchestration" }
                li { span aria-hidden="true" class="swatch retry" {} "failed attempt (retried)" }
                li { span aria-hidden="true" class="swatch mark" {} "instance event (raised event, suspend, end)" }
            }
        }
        @if !children.is_empty() {
            details id="sub-orchestrations" class="children" open[children.len() <= 10] {
                summary { "Sub-orchestrations (" (children.len()) ")" }
                ol {
                    @for bar in children.iter().take(MAX_FAILED_LISTED) {
                        @if let Some(child) = &bar.child {
                            li {
                                a href=(instance_path(child)) { (bar.name) " " code { (child) } }
                                " " (bar.outcome.as_str())
                            }
                        }
                    }
                }
                @if children.len() > MAX_FAILED_LISTED {
                    p { "… and " (children.len() - MAX_FAILED_LISTED) " more; the instances page lists them all." }
                }
            }
        }
        @if !failed.is_empty() {
            details id="failed-tasks" class="failed-tasks" open[failed.len() <= 10] {
                summary { "Failed tasks (" (failed.len()) ")" }
                ol {
                    @for bar in failed.iter().take(MAX_FAILED_LISTED) {
                        li {
                            "#" (bar.task_id) " " (bar.name) ": "
                            (cut(bar.message.as_deref().unwrap_or(""), 500).0)
                        }
                    }
                }
                @if failed.len() > MAX_FAILED_LISTED {
                    p { "… and " (failed.len() - MAX_FAILED_LISTED) " more; the history lists them all." }
                }
            }
        }
    }
}

fn row_title(timeline: &Timeline, row: &Row) -> String {
    if row.tasks() == 1 {
        let bar = &timeline.bars[row.first];
        let what = match bar.kind {
            Kind::Activity => format!("activity {} (task {})", bar.name, bar.task_id),
            Kind::Timer => format!("timer (task {})", bar.task_id),
            Kind::Event => format!("wait for event {} (task {})", bar.name, bar.task_id),
            Kind::SubOrchestration => format!(
                "sub-orchestration {} {} (task {})",
                bar.name,
                bar.child.as_deref().unwrap_or_default(),
                bar.task_id
            ),
        };
        let state = match (bar.outcome, bar.end) {
            (Outcome::Pending, _) => "pending".to_string(),
            (outcome, Some(end)) => {
                format!("{} after {}", outcome.as_str(), duration(end - bar.start))
            }
            (outcome, None) => outcome.as_str().to_string(),
        };
        let retries = match bar.retries.len() {
            0 => String::new(),
            n => format!(", {n} failed attempt(s) before"),
        };
        let message = bar
            .message
            .as_deref()
            .map(|message| format!(": {}", cut(message, 200).0))
            .unwrap_or_default();
        format!("{what}: {state}{retries}{message}")
    } else {
        let first = timeline.bars[row.first].task_id;
        let last = timeline.bars[row.last].task_id;
        let name = if row.name.is_empty() {
            "tasks".to_string()
        } else {
            row.name.clone()
        };
        format!(
            "{name} {first}–{last}: {} completed, {} failed, {} pending",
            row.completed, row.failed, row.pending
        )
    }
}

fn history_row(entry: &HistoryEvent) -> Markup {
    use crate::store::Event;
    let (task, details): (Option<u32>, String) = match &entry.event {
        Event::ExecutionStarted { name, input, .. } => (None, format!("{name}({input})")),
        Event::SubOrchestrationScheduled {
            task_id,
            name,
            instance_id,
            input,
        } => (Some(*task_id), format!("{name}({input}) as {instance_id}")),
        Event::SubOrchestrationCompleted { task_id, result } => (Some(*task_id), result.clone()),
        Event::SubOrchestrationFailed { task_id, message } => (Some(*task_id), message.clone()),
        Event::OrchestratorStarted => (None, String::new()),
        Event::TaskScheduled {
            task_id,
            name,
            input,
            ..
        } => (Some(*task_id), format!("{name}({input})")),
        Event::TaskRetrying {
            task_id,
            attempt,
            message,
            retry_at,
        } => (
            Some(*task_id),
            format!(
                "attempt {attempt} failed: {message}; retry at {}",
                retry_at.format("%H:%M:%S")
            ),
        ),
        Event::TaskCompleted { task_id, result } => (Some(*task_id), result.clone()),
        Event::TaskFailed { task_id, message } => (Some(*task_id), message.clone()),
        Event::TimerCreated { task_id, fire_at } | Event::TimerFired { task_id, fire_at } => (
            Some(*task_id),
            format!("due {}", fire_at.format("%Y-%m-%d %H:%M:%S UTC")),
        ),
        Event::EventWaitStarted { task_id, name } => (Some(*task_id), name.clone()),
        Event::EventRaised { name, input } => (None, format!("{name}: {input}")),
        Event::ExecutionCompleted { result } => (None, result.clone()),
        Event::ExecutionFailed { message } => (None, message.clone()),
        Event::ExecutionSuspended { reason }
        | Event::ExecutionResumed { reason }
        | Event::ExecutionTerminated { reason }
        | Event::ExecutionRewound { reason } => (None, reason.clone()),
    };
    let kind = entry.event.kind();
    let failed = matches!(
        kind,
        "TaskFailed" | "ExecutionFailed" | "TaskRetrying" | "SubOrchestrationFailed"
    );
    html! {
        tr class=[failed.then_some("failed")] {
            td { (entry.seq) }
            td { (time(entry.timestamp)) }
            td { (kind) }
            td { @if let Some(task) = task { (task) } }
            td class="details" { (cut(&details, 300).0) @if details.len() > 300 { "…" } }
        }
    }
}

/// `GET /ui/instances/{id}/confirm/{action}`: what the action does, its fields, and the
/// button that does it.
pub async fn confirm(visit: &Visit, id: &str, action: Action) -> Result<Response, Error> {
    let instance = visit
        .api
        .runtime
        .store()
        .instance(id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no instance with id '{id}'")))?;
    let path = instance_path(&instance.id);
    let content = html! {
        nav class="crumbs" aria-label="Breadcrumb" {
            a href="/" { "Instances" } " › " a href=(path) { (instance.name) }
        }
        h1 { (action.label()) " this instance?" }
        p { "Instance " code { (instance.id) } " of " strong { (instance.name) } ", now " (status_badge(instance.status)) "." }
        p { (action.explanation()) }
        form class="confirm" method="post" action=(format!("{path}/{}", action.slug())) {
            @match action {
                Action::Restart => {
                    div class="field check" {
                        input id="new_id" type="checkbox" name="new_id" value="true" checked;
                        label for="new_id" { "Start it under a new instance id" }
                    }
                }
                Action::RaiseEvent => {
                    div class="field" {
                        label for="event" { "Event name" }
                        input id="event" type="text" name="event" required;
                    }
                    div class="field" {
                        label for="data" { "Data (JSON)" }
                        textarea id="data" name="data" rows="6" { "null" }
                    }
                }
                Action::Purge => {}
                _ => {
                    div class="field" {
                        label for="reason" { "Reason (optional)" }
                        input id="reason" type="text" name="reason";
                    }
                }
            }
            div class="buttons" {
                button type="submit" id="confirm" class=[matches!(action, Action::Terminate | Action::Purge).then_some("danger")] {
                    "Confirm: " (action.label())
                }
                a href=(path) { "Cancel" }
            }
        }
    };
    Ok(html(
        StatusCode::OK,
        layout(
            &format!("{} {}", action.label(), instance.name),
            true,
            content,
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        let ms = chrono::Duration::milliseconds;
        assert_eq!(duration(ms(350)), "350 ms");
        assert_eq!(duration(ms(12_340)), "12.3 s");
        assert_eq!(duration(ms(83_000)), "1m 23s");
        assert_eq!(duration(ms(3_723_000)), "1h 02m 03s");
        assert_eq!(duration(ms(-5)), "0 ms");
    }

    #[test]
    fn cuts_fall_on_character_boundaries() {
        assert_eq!(cut("héllo", 2), ("h", true));
        assert_eq!(cut("abc", 3), ("abc", false));
    }

    #[test]
    fn guest_text_is_escaped() {
        let markup = payload(r#""<script>alert(1)</script>""#).into_string();
        assert!(!markup.contains("<script>"), "{markup}");
        assert!(markup.contains("&lt;script&gt;"), "{markup}");
    }
}
