//! Metric families and their Prometheus text exposition (format 0.0.4).
//!
//! Hand-rolled rather than a crate: three metric kinds with a few labels each are a few dozen
//! lines, cost nothing to build, and keep one lock per family on the hot path. Label values must
//! come from small, fixed sets (route templates, job kinds, outcomes), never from ids.

use std::{collections::BTreeMap, fmt::Write as _, sync::Mutex};

/// What a family measures.
#[derive(Debug)]
enum Kind {
    Counter,
    Gauge,
    /// Cumulative buckets with these upper bounds (ascending; `+Inf` is implied).
    Histogram(&'static [f64]),
}

/// One series' value.
#[derive(Debug, Clone)]
enum Value {
    Number(f64),
    Histogram {
        buckets: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

/// A metric family: a name, help text, label names, and one series per label-value tuple.
#[derive(Debug)]
pub struct Family {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    kind: Kind,
    series: Mutex<BTreeMap<Vec<String>, Value>>,
}

impl Family {
    /// A counter: only goes up.
    pub const fn counter(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self::new(name, help, labels, Kind::Counter)
    }

    /// A gauge: set to the current value.
    pub const fn gauge(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self::new(name, help, labels, Kind::Gauge)
    }

    /// A histogram with these bucket upper bounds.
    pub const fn histogram(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        buckets: &'static [f64],
    ) -> Self {
        Self::new(name, help, labels, Kind::Histogram(buckets))
    }

    const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        kind: Kind,
    ) -> Self {
        Self {
            name,
            help,
            labels,
            kind,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// The family's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Adds `by` to a counter or gauge series.
    pub fn add(&self, labels: &[&str], by: f64) {
        self.update(labels, |value| {
            if let Value::Number(n) = value {
                *n += by;
            }
        });
    }

    /// Adds one.
    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1.0);
    }

    /// Sets a gauge series.
    pub fn set(&self, labels: &[&str], to: f64) {
        self.update(labels, |value| {
            if let Value::Number(n) = value {
                *n = to;
            }
        });
    }

    /// Records one observation in a histogram series.
    pub fn observe(&self, labels: &[&str], observed: f64) {
        let bounds = match self.kind {
            Kind::Histogram(bounds) => bounds,
            _ => return,
        };
        self.update(labels, |value| {
            if let Value::Histogram {
                buckets,
                sum,
                count,
            } = value
            {
                for (bucket, bound) in buckets.iter_mut().zip(bounds) {
                    if observed <= *bound {
                        *bucket += 1;
                    }
                }
                *sum += observed;
                *count += 1;
            }
        });
    }

    /// The current value of a counter or gauge series (tests and refresh hooks).
    pub fn get(&self, labels: &[&str]) -> Option<f64> {
        let key: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        match self.lock().get(&key) {
            Some(Value::Number(n)) => Some(*n),
            _ => None,
        }
    }

    fn update(&self, labels: &[&str], apply: impl FnOnce(&mut Value)) {
        // A wrong label count is a programming error; dropping the sample beats a panic in a
        // request or job path, and a unit test per family catches it.
        if labels.len() != self.labels.len() {
            debug_assert!(false, "{}: wrong label count", self.name);
            return;
        }
        let key: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        let mut series = self.lock();
        let value = series.entry(key).or_insert_with(|| match self.kind {
            Kind::Histogram(bounds) => Value::Histogram {
                buckets: vec![0; bounds.len()],
                sum: 0.0,
                count: 0,
            },
            _ => Value::Number(0.0),
        });
        apply(value);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<String>, Value>> {
        // The map stays consistent even if a holder panicked (every update is one assignment).
        self.series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends the family in the text format.
    fn encode(&self, out: &mut String) {
        let kind = match self.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram(_) => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
        let series = self.lock().clone();
        for (values, value) in &series {
            let labels = label_pairs(self.labels, values);
            match value {
                Value::Number(n) => {
                    let _ = writeln!(out, "{}{} {}", self.name, braces(&labels), number(*n));
                }
                Value::Histogram {
                    buckets,
                    sum,
                    count,
                } => self.encode_histogram(out, &labels, buckets, *sum, *count),
            }
        }
    }

    fn encode_histogram(
        &self,
        out: &mut String,
        labels: &str,
        buckets: &[u64],
        sum: f64,
        count: u64,
    ) {
        let bounds = match self.kind {
            Kind::Histogram(bounds) => bounds,
            _ => return,
        };
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, n) in bounds.iter().zip(buckets) {
            let le = number(*bound);
            let _ = writeln!(out, "{}_bucket{{{labels}{sep}le=\"{le}\"}} {n}", self.name);
        }
        let _ = writeln!(
            out,
            "{}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}",
            self.name
        );
        let _ = writeln!(out, "{}_sum{} {}", self.name, braces(labels), number(sum));
        let _ = writeln!(out, "{}_count{} {count}", self.name, braces(labels));
    }
}

/// `a="x",b="y"`, values escaped as the format requires.
fn label_pairs(names: &[&str], values: &[String]) -> String {
    names
        .iter()
        .zip(values)
        .map(|(name, value)| {
            let escaped = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{name}=\"{escaped}\"")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

fn number(n: f64) -> String {
    if n.is_finite() && n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        format!("{n}")
    }
}

/// The text exposition of `families`, in order.
pub fn render(families: &[&Family]) -> String {
    let mut out = String::new();
    for family in families {
        family.encode(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    static REQUESTS: Family =
        Family::counter("t_requests_total", "Requests.", &["route", "status"]);
    static DEPTH: Family = Family::gauge("t_depth", "Depth.", &[]);
    static LATENCY: Family = Family::histogram("t_seconds", "Latency.", &["route"], &[0.1, 1.0]);

    #[test]
    fn families_render_in_the_prometheus_text_format() {
        REQUESTS.inc(&["get_x", "200"]);
        REQUESTS.inc(&["get_x", "200"]);
        REQUESTS.inc(&["say \"hi\"", "500"]);
        DEPTH.set(&[], 3.0);
        LATENCY.observe(&["get_x"], 0.0625);
        LATENCY.observe(&["get_x"], 0.5);
        LATENCY.observe(&["get_x"], 5.0);

        let text = render(&[&REQUESTS, &DEPTH, &LATENCY]);

        assert!(text.contains("# TYPE t_requests_total counter\n"), "{text}");
        assert!(
            text.contains("t_requests_total{route=\"get_x\",status=\"200\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("route=\"say \\\"hi\\\"\""), "{text}");
        assert!(text.contains("t_depth 3\n"), "{text}");
        assert!(
            text.contains("t_seconds_bucket{route=\"get_x\",le=\"0.1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{route=\"get_x\",le=\"1\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{route=\"get_x\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_sum{route=\"get_x\"} 5.5625\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_count{route=\"get_x\"} 3\n"),
            "{text}"
        );
        assert_eq!(REQUESTS.get(&["get_x", "200"]), Some(2.0));
    }
}
