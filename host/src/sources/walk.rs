//! Walking a pull source: one page per [`Walker::step`], so the caller paces the calls
//! (a source's rate limit) and may stop between any two (a restart then walks the
//! unfinished slice again).
//!
//! A walk reads one time slice: from the watermark less the overlap window (or the
//! configured start, the first time) up to now, or a shorter span while catching up on
//! history. Sources such as Slack's give the newest entries first, while detectors
//! need them in time order, so a slice is gathered whole, then handed over sorted by
//! time, without the entries the previous slices let in (the [`Mark`]'s `seen` ids),
//! with the [`Mark`] to commit together with them. A slice holding more than
//! `max_entries` is walked again at half the span; a slice that went quickly doubles
//! the next one's.

use std::collections::HashSet;

use super::{Entry, Mark, PullError, PullSource, Window};

/// The span of a walk's slice while catching up, to begin with (seconds).
const FIRST_SPAN: i64 = 3_600;
/// The longest span of one slice (seconds): 30 days.
const MAX_SPAN: i64 = 30 * 86_400;

/// What a source's walk is told, from the tenant's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkSettings {
    /// The first second to read, the first time.
    pub start: i64,
    /// Seconds below the watermark read again on every walk (late arrivals).
    pub overlap: i64,
    /// Most entries one slice gathers before it is walked again at half the span.
    pub max_entries: usize,
    /// Most `seen` ids a mark keeps (older ones are forgotten first).
    pub max_seen: usize,
}

/// What a step did.
#[derive(Debug)]
pub enum Step {
    /// Nothing to read yet (the start is in the future).
    Idle,
    /// A page was read; the slice goes on.
    Paged,
    /// The slice had more than `max_entries`: it is walked again at half the span.
    Split,
    /// A slice is complete: its new entries in time order, and the mark to commit with
    /// them.
    Slice(Slice),
}

/// A walked slice.
#[derive(Debug)]
pub struct Slice {
    /// Entries not let in before, by time then id.
    pub entries: Vec<Entry>,
    /// What to commit with them.
    pub mark: Mark,
    /// Entries of the slice let in before (the overlap, or a page read twice).
    pub duplicates: usize,
    /// Whether the slice reached the present: the source is caught up.
    pub caught_up: bool,
}

/// A walk under way.
#[derive(Debug)]
struct Walk {
    window: Window,
    cursor: Option<String>,
    entries: Vec<Entry>,
    ids: HashSet<String>,
    repeated: usize,
}

/// Walks one source, keeping the slice under way between steps.
#[derive(Debug)]
pub struct Walker {
    settings: WalkSettings,
    span: i64,
    walk: Option<Walk>,
}

impl Walker {
    /// A walker with nothing under way.
    pub fn new(settings: WalkSettings) -> Self {
        Walker {
            settings,
            span: FIRST_SPAN,
            walk: None,
        }
    }

    /// The window of the slice under way, if one is.
    pub fn walking(&self) -> Option<Window> {
        self.walk.as_ref().map(|w| w.window)
    }

    /// Forget the slice under way (it is walked again from its first page).
    pub fn abandon(&mut self) {
        self.walk = None;
    }

    /// Read one page from `source`, `mark` being what is committed and `now` the
    /// present second. An error keeps the walk where it was, to go on after a wait.
    pub fn step(
        &mut self,
        source: &dyn PullSource,
        mark: Option<&Mark>,
        now: i64,
    ) -> Result<Step, PullError> {
        if self.walk.is_none() {
            let Some(window) = self.next_window(mark, now) else {
                return Ok(Step::Idle);
            };
            self.walk = Some(Walk {
                window,
                cursor: None,
                entries: Vec::new(),
                ids: HashSet::new(),
                repeated: 0,
            });
        }
        let Some(walk) = self.walk.as_mut() else {
            return Ok(Step::Idle);
        };
        let page = source.page(walk.window, walk.cursor.as_deref())?;
        for e in page.entries {
            // A source that answers outside the window asked for is not trusted to.
            if !walk.window.contains(e.second) {
                continue;
            }
            if walk.ids.insert(e.id.clone()) {
                walk.entries.push(e);
            } else {
                walk.repeated += 1;
            }
        }
        let window = walk.window;
        if walk.entries.len() > self.settings.max_entries && window.latest > window.oldest {
            self.span = ((window.latest - window.oldest) / 2).max(1);
            self.walk = None;
            return Ok(Step::Split);
        }
        if let Some(next) = page.next.filter(|n| !n.is_empty()) {
            walk.cursor = Some(next);
            return Ok(Step::Paged);
        }
        let Some(walk) = self.walk.take() else {
            return Ok(Step::Idle);
        };
        if walk.entries.len() < self.settings.max_entries / 4 {
            self.span = self.span.saturating_mul(2).min(MAX_SPAN);
        }
        Ok(Step::Slice(self.finish(walk, mark, now)))
    }

    /// The next slice's window: from the watermark less the overlap (the start, the
    /// first time) up to now, or `span` seconds of it while behind.
    fn next_window(&self, mark: Option<&Mark>, now: i64) -> Option<Window> {
        let s = &self.settings;
        let oldest = match mark {
            Some(m) => m.watermark.saturating_sub(s.overlap).max(s.start),
            None => s.start,
        };
        let latest = now.min(oldest.saturating_add(self.span));
        (latest >= oldest).then_some(Window { oldest, latest })
    }

    /// The slice of a finished walk: its entries not seen before, in time order, and
    /// the mark that remembers them.
    fn finish(&self, walk: Walk, mark: Option<&Mark>, now: i64) -> Slice {
        let seen: HashSet<&str> = mark
            .map(|m| m.seen.iter().map(|(_, id)| id.as_str()).collect())
            .unwrap_or_default();
        let mut entries = walk.entries;
        let before = entries.len();
        entries.retain(|e| !seen.contains(e.id.as_str()));
        let duplicates = walk.repeated + (before - entries.len());
        entries.sort_by(|a, b| a.second.cmp(&b.second).then_with(|| a.id.cmp(&b.id)));

        // Remember what the next walk reads again: the overlap below the new watermark.
        let watermark = walk
            .window
            .latest
            .max(mark.map_or(i64::MIN, |m| m.watermark));
        let from = watermark.saturating_sub(self.settings.overlap);
        let mut kept: Vec<(i64, String)> = mark
            .map(|m| m.seen.clone())
            .unwrap_or_default()
            .into_iter()
            .chain(entries.iter().map(|e| (e.second, e.id.clone())))
            .filter(|(second, _)| *second >= from)
            .collect();
        kept.sort();
        kept.dedup();
        let excess = kept.len().saturating_sub(self.settings.max_seen);
        kept.drain(..excess);
        Slice {
            entries,
            mark: Mark {
                watermark,
                seen: kept,
            },
            duplicates,
            caught_up: walk.window.latest >= now,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::sources::Page;

    /// A source over `entries` (id, second), newest first, `page` per page, whose cursor
    /// is an offset; `arrive` adds entries after a given number of calls.
    struct Fake {
        entries: RefCell<Vec<(String, i64)>>,
        page: usize,
        calls: RefCell<usize>,
        arrive: RefCell<Vec<(usize, String, i64)>>,
        windows: RefCell<Vec<Window>>,
    }

    impl Fake {
        fn new(entries: &[(&str, i64)], page: usize) -> Self {
            Fake {
                entries: RefCell::new(entries.iter().map(|(i, s)| (i.to_string(), *s)).collect()),
                page,
                calls: RefCell::new(0),
                arrive: RefCell::new(Vec::new()),
                windows: RefCell::new(Vec::new()),
            }
        }
    }

    impl PullSource for Fake {
        fn page(&self, window: Window, cursor: Option<&str>) -> Result<Page, PullError> {
            *self.calls.borrow_mut() += 1;
            let calls = *self.calls.borrow();
            let arrived: Vec<_> = self
                .arrive
                .borrow()
                .iter()
                .filter(|(at, _, _)| *at == calls)
                .map(|(_, id, s)| (id.clone(), *s))
                .collect();
            self.entries.borrow_mut().extend(arrived);
            self.windows.borrow_mut().push(window);
            let mut all: Vec<(String, i64)> = self
                .entries
                .borrow()
                .iter()
                .filter(|(_, s)| window.contains(*s))
                .cloned()
                .collect();
            all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
            let from: usize = cursor.map_or(0, |c| c.parse().unwrap());
            let to = (from + self.page).min(all.len());
            Ok(Page {
                entries: all[from..to]
                    .iter()
                    .map(|(id, s)| Entry {
                        id: id.clone(),
                        second: *s,
                        raw: serde_json::json!({"id": id}),
                    })
                    .collect(),
                next: (to < all.len()).then(|| to.to_string()),
            })
        }
    }

    fn settings(start: i64) -> WalkSettings {
        WalkSettings {
            start,
            overlap: 60,
            max_entries: 1_000,
            max_seen: 10_000,
        }
    }

    /// Walk until caught up at `now`, committing each slice; the ids let in, in order.
    fn run(w: &mut Walker, src: &Fake, mark: &mut Option<Mark>, now: i64) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..10_000 {
            match w.step(src, mark.as_ref(), now).unwrap() {
                Step::Idle => return out,
                Step::Paged | Step::Split => {}
                Step::Slice(s) => {
                    out.extend(s.entries.iter().map(|e| e.id.clone()));
                    *mark = Some(s.mark);
                    if s.caught_up {
                        return out;
                    }
                }
            }
        }
        panic!("the walk did not finish");
    }

    #[test]
    fn a_walk_reads_every_page_and_hands_the_slice_over_in_time_order() {
        let src = Fake::new(&[("a", 100), ("b", 101), ("c", 101), ("d", 150)], 2);
        let mut w = Walker::new(settings(100));
        let mut mark = None;
        assert_eq!(run(&mut w, &src, &mut mark, 200), ["a", "b", "c", "d"]);
        let mark = mark.unwrap();
        assert_eq!(mark.watermark, 200);
        // The overlap (the last 60 s) is remembered, the rest forgotten.
        assert_eq!(mark.seen, [(150, "d".to_owned())]);
    }

    #[test]
    fn the_next_walk_rereads_the_overlap_and_lets_in_only_what_is_new() {
        let src = Fake::new(&[("a", 100), ("late", 190)], 10);
        let mut w = Walker::new(settings(0));
        let mut mark = None;
        assert_eq!(run(&mut w, &src, &mut mark, 200), ["a", "late"]);
        // An entry dated within the overlap shows up late; another is new.
        src.entries.borrow_mut().push(("later".into(), 195));
        src.entries.borrow_mut().push(("new".into(), 230));
        assert_eq!(run(&mut w, &src, &mut mark, 260), ["later", "new"]);
        assert_eq!(src.windows.borrow().last().unwrap().oldest, 140);
    }

    #[test]
    fn entries_arriving_during_a_walk_come_in_once() {
        // Newest first with an offset cursor: an entry arriving on top during the walk
        // pushes an entry of the first page onto the second, read twice.
        let entries: Vec<(String, i64)> = (0..10).map(|i| (format!("e{i}"), 100 + i)).collect();
        let refs: Vec<(&str, i64)> = entries.iter().map(|(i, s)| (i.as_str(), *s)).collect();
        let src = Fake::new(&refs, 3);
        src.arrive.borrow_mut().push((2, "mid".into(), 150));
        let mut w = Walker::new(settings(0));
        let mut mark = None;
        let mut got = run(&mut w, &src, &mut mark, 160);
        got.extend(run(&mut w, &src, &mut mark, 220));
        let mut want: Vec<String> = (0..10).map(|i| format!("e{i}")).collect();
        want.push("mid".into());
        assert_eq!(got, want);
    }

    #[test]
    fn a_slice_too_large_is_walked_again_at_half_the_span() {
        let entries: Vec<(String, i64)> = (0..50).map(|i| (format!("e{i:02}"), i * 100)).collect();
        let refs: Vec<(&str, i64)> = entries.iter().map(|(i, s)| (i.as_str(), *s)).collect();
        let src = Fake::new(&refs, 4);
        let mut w = Walker::new(WalkSettings {
            max_entries: 10,
            ..settings(0)
        });
        let mut mark = None;
        let got = run(&mut w, &src, &mut mark, 5_000);
        let want: Vec<String> = (0..50).map(|i| format!("e{i:02}")).collect();
        assert_eq!(got, want, "every entry once, in order");
        // No slice handed over more than the bound (the first walk of 3,600 s was split).
        assert!(
            src.windows
                .borrow()
                .iter()
                .all(|w| w.latest - w.oldest <= 3_600)
        );
    }

    #[test]
    fn an_error_keeps_the_walk_where_it_was() {
        struct Flaky<'a>(&'a Fake, RefCell<bool>);
        impl PullSource for Flaky<'_> {
            fn page(&self, window: Window, cursor: Option<&str>) -> Result<Page, PullError> {
                if cursor.is_some() && !self.1.replace(true) {
                    return Err(PullError::Transient("http_503".into()));
                }
                self.0.page(window, cursor)
            }
        }
        let src = Fake::new(&[("a", 1), ("b", 2), ("c", 3)], 2);
        let flaky = Flaky(&src, RefCell::new(false));
        let mut w = Walker::new(settings(0));
        assert!(matches!(w.step(&flaky, None, 10), Ok(Step::Paged)));
        assert!(w.step(&flaky, None, 10).is_err());
        // Resumed at the second page, not the first.
        let Ok(Step::Slice(s)) = w.step(&flaky, None, 10) else {
            panic!("the slice")
        };
        assert_eq!(s.entries.len(), 3);
        assert_eq!(
            *src.calls.borrow(),
            2,
            "the second page read once, after the failure"
        );
    }

    #[test]
    fn a_start_in_the_future_reads_nothing_yet() {
        let src = Fake::new(&[("a", 1)], 2);
        let mut w = Walker::new(settings(1_000));
        assert!(matches!(w.step(&src, None, 10), Ok(Step::Idle)));
        assert_eq!(*src.calls.borrow(), 0);
    }

    #[test]
    fn the_seen_ids_are_bounded() {
        let entries: Vec<(String, i64)> = (0..30).map(|i| (format!("e{i:02}"), 100)).collect();
        let refs: Vec<(&str, i64)> = entries.iter().map(|(i, s)| (i.as_str(), *s)).collect();
        let src = Fake::new(&refs, 100);
        let mut w = Walker::new(WalkSettings {
            max_seen: 8,
            ..settings(0)
        });
        let mut mark = None;
        run(&mut w, &src, &mut mark, 120);
        assert_eq!(mark.unwrap().seen.len(), 8);
    }
}
