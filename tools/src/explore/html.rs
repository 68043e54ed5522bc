//! `explore --html FILE`: the report as one self-contained page (inline
//! CSS, no script, no external resource): the settings and counts, a
//! timeline of the trace's events with each crash point coloured by what
//! its states did, and a card per vulnerability with its fix and members.

use super::{Checked, Exploration, Found};
use crate::ExploreArgs;
use durafs::trace::{Trace, TraceOp};
use std::fmt::Write;

/// States checked and failed at one crash point, and whether a
/// vulnerability (not only failures with nothing lost) has it.
#[derive(Clone, Copy, Debug, Default)]
pub struct PointOutcome {
    pub checked: usize,
    pub failed: usize,
    pub vulnerable: bool,
}

/// The outcome of every crash point `0..=events`.
pub fn outcomes(checked: &[Checked], found: &[Found], events: usize) -> Vec<PointOutcome> {
    let mut out = vec![PointOutcome::default(); events + 1];
    for c in checked {
        if let Some(o) = out.get_mut(c.point) {
            o.checked += 1;
            o.failed += usize::from(!c.passed);
        }
    }
    for p in found.iter().flat_map(|f| &f.vulnerability.points) {
        if let Some(o) = out.get_mut(*p) {
            o.vulnerable = true;
        }
    }
    out
}

/// `s` with `&`, `<`, `>`, `"` and `'` escaped for HTML text and
/// attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2330;background:#f7f8fa}\
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}\
.meta{color:#5b6475}.tl{display:flex;flex-direction:column;gap:2px;max-width:980px}\
.ev{display:flex;align-items:center;gap:8px;font-family:ui-monospace,monospace;font-size:13px}\
.n{width:48px;text-align:right;color:#5b6475}.op{padding:1px 6px;border-radius:4px;background:#e8ebf0}\
.op.fsync{background:#d5f0dc}.op.mark{background:#d8e6fb}.op.lost{outline:2px solid #d6336c}\
.pt{width:12px;height:12px;border-radius:50%;display:inline-block;flex:none}\
.pass{background:#2f9e44}.vuln{background:#d6336c}.noloss{background:#f59f00}.none{background:#ced4da}\
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:12px;max-width:1300px}\
.card{background:#fff;border:1px solid #dfe3ea;border-left:6px solid #d6336c;border-radius:6px;padding:12px 14px}\
.card.noloss{border-left-color:#f59f00}.kind{font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:#d6336c;font-weight:700}\
.fix{background:#e6fcf5;border:1px solid #96f2d7;border-radius:4px;padding:6px 8px;margin:8px 0;font-family:ui-monospace,monospace;font-size:12.5px}\
.facts{font-family:ui-monospace,monospace;font-size:12.5px;margin:4px 0}.members{color:#5b6475;font-size:12.5px}\
.legend span{margin-right:14px}code{font-size:12.5px}";

/// The page.
pub fn page(args: &ExploreArgs, trace: &Trace, r: &Exploration, points: &[PointOutcome]) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>durafs explore: {} vulnerabilities</title><style>{STYLE}</style></head><body>",
        r.vulnerabilities.len()
    );
    let c = &r.settings;
    let _ = write!(
        o,
        "<h1>durafs explore</h1><div class=meta>durafs {} · model {} · crash points {} · at most {} states · seed {} · {}-byte sectors</div>",
        esc(c.version),
        esc(&c.model),
        esc(&c.at),
        c.max_states,
        c.seed,
        c.sector
    );
    let _ = write!(
        o,
        "<p><b>{}</b> operations recorded, <b>{}</b> states checked, <b>{}</b> failed: <b>{}</b> vulnerabilities, {} with nothing lost.</p><p class=meta><code>{}</code></p>",
        r.stats.events,
        r.states_tried,
        r.states_failed,
        r.vulnerabilities.len(),
        r.no_loss.states.len(),
        esc(&args.check)
    );
    cards(&mut o, r);
    let lost: std::collections::HashSet<u64> = r
        .vulnerabilities
        .iter()
        .flat_map(|f| f.vulnerability.events.iter().copied())
        .collect();
    timeline(&mut o, trace, points, &lost);
    o.push_str("</body></html>\n");
    o
}

fn facts(o: &mut String, label: &str, facts: &[durafs::explore::explain::Fact]) {
    if facts.is_empty() {
        return;
    }
    let list: Vec<String> = facts
        .iter()
        .map(|f| {
            let at =
                f.at.as_ref()
                    .map_or_else(String::new, |a| format!(" at <b>{}</b>", esc(a)));
            format!("{} <i>({})</i>{at}", esc(&f.op), esc(&f.fate))
        })
        .collect();
    let _ = write!(o, "<div class=facts>{label}: {}</div>", list.join("; "));
}

fn cards(o: &mut String, r: &Exploration) {
    o.push_str("<h2>Vulnerabilities</h2><div class=cards>");
    if r.vulnerabilities.is_empty() {
        o.push_str("<p>None.</p>");
    }
    for (i, f) in r.vulnerabilities.iter().enumerate() {
        let v = &f.vulnerability;
        let _ = write!(
            o,
            "<div class=card id=v{}><div class=kind>{} · vulnerability {}</div><b>{}</b><div class=fix>fix: {}</div>",
            i + 1,
            v.kind,
            i + 1,
            esc(&v.summary),
            esc(&v.fix)
        );
        facts(o, "lost", &v.lost);
        facts(o, "persisted before it", &v.kept);
        let members: Vec<String> = v.states.iter().take(40).map(ToString::to_string).collect();
        let _ = write!(
            o,
            "<div class=members>{} failing states at {} crash points, the first after {}: states {}{}</div>",
            v.states.len(),
            v.points.len(),
            esc(v.first_after.as_deref().unwrap_or("nothing")),
            members.join(", "),
            if v.states.len() > 40 { ", ..." } else { "" }
        );
        if let Some(m) = f.members.first() {
            let _ = write!(
                o,
                "<div class=members>e.g. state {}: {}</div>",
                m.state,
                esc(&m.description)
            );
        }
        o.push_str("</div>");
    }
    if !r.no_loss.states.is_empty() {
        let _ = write!(
            o,
            "<div class='card noloss'><div class=kind>nothing lost</div><b>{} states fail with every unsynced operation kept</b><div class=members>The program's own intermediate state fails the check: its update is not atomic, or the check expects more than the program had done (check what its marks promise).</div></div>",
            r.no_loss.states.len()
        );
    }
    o.push_str("</div>");
}

fn dot(o: &mut String, k: usize, p: PointOutcome) {
    let class = match p {
        PointOutcome { checked: 0, .. } => "none",
        PointOutcome {
            vulnerable: true, ..
        } => "vuln",
        PointOutcome { failed, .. } if failed > 0 => "noloss",
        _ => "pass",
    };
    let _ = write!(
        o,
        "<span class='pt {class}' title='crash point {k}: {} states checked, {} failed'></span>",
        p.checked, p.failed
    );
}

fn timeline(
    o: &mut String,
    trace: &Trace,
    points: &[PointOutcome],
    lost: &std::collections::HashSet<u64>,
) {
    o.push_str("<h2>Timeline</h2><div class='legend meta'><span><span class='pt pass'></span> all states passed</span><span><span class='pt vuln'></span> a vulnerability</span><span><span class='pt noloss'></span> failed with nothing lost</span><span><span class='pt none'></span> not checked</span><span>a dot: the crash right after the event; <span class='op lost'>outlined</span>: lost in a vulnerability</span></div><div class=tl>");
    let at = |k: usize| points.get(k).copied().unwrap_or_default();
    o.push_str("<div class=ev>");
    dot(o, 0, at(0));
    o.push_str(
        "<span class=n></span><span class=meta>crash before the first operation</span></div>",
    );
    for (i, ev) in trace.events.iter().enumerate() {
        let class = match &ev.op {
            op if op.is_persistence_point() => "op fsync",
            TraceOp::Mark { .. } => "op mark",
            _ => "op",
        };
        let lost = if lost.contains(&ev.n) { " lost" } else { "" };
        o.push_str("<div class=ev>");
        // The dot after an event is the crash point right after it.
        dot(o, i + 1, at(i + 1));
        let _ = write!(
            o,
            "<span class=n>#{}</span><span class='{class}{lost}'>{}</span></div>",
            ev.n,
            esc(&ev.op.summary(&ev.paths))
        );
    }
    o.push_str("</div>");
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
