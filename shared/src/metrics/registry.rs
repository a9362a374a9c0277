//! A thin facade over `prometheus-client`: metric families declared as `static`s with their
//! name, help and label names in one place, and their Prometheus text exposition (format 0.0.4).
//!
//! Label values are `&'static str` arrays checked against the label names at compile time, so
//! recording a sample allocates nothing: a read lock on the family and an atomic (a histogram
//! adds the lock of its one series). Label values must come from small, fixed sets (route
//! templates, job kinds, outcomes), never from ids.

use std::{
    fmt,
    hash::{Hash, Hasher},
    sync::{OnceLock, atomic::AtomicU64},
};

use prometheus_client::{
    encoding::{EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder},
    metrics::{
        MetricType, TypedMetric,
        counter::Counter as Count,
        family::{Family, MetricConstructor},
        gauge::Gauge as Level,
        histogram::Histogram as Distribution,
    },
    registry::Registry,
};

/// A counter: only goes up. Its name ends in `_total`, as exported.
pub type Counter<const N: usize> = Metric<N, Count>;

/// A gauge with whole values (counts, bytes, 0/1).
pub type Gauge<const N: usize> = Metric<N, Level>;

/// A gauge with fractional values (ages in seconds).
pub type FloatGauge<const N: usize> = Metric<N, Level<f64, AtomicU64>>;

/// A histogram with fixed bucket bounds.
pub type Histogram<const N: usize> = Metric<N, Distribution>;

/// One metric family: name, help text, label names, and one series per label-value tuple,
/// created on first use.
pub struct Metric<const N: usize, M> {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str; N],
    new: New,
    family: OnceLock<Family<Series<N>, M, New>>,
}

impl<const N: usize, M> Metric<N, M>
where
    New: MetricConstructor<M>,
{
    const fn with(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str; N],
        buckets: &'static [f64],
    ) -> Self {
        Self {
            name,
            help,
            labels,
            new: New { buckets },
            family: OnceLock::new(),
        }
    }

    /// The family's name, as exported.
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn family(&self) -> &Family<Series<N>, M, New> {
        self.family
            .get_or_init(|| Family::new_with_constructor(self.new))
    }

    fn series(&self, values: [&'static str; N]) -> Series<N> {
        Series {
            names: self.labels,
            values,
        }
    }

    /// Runs `f` on the series of `values`, creating it first if needed.
    fn with_series<R>(&self, values: [&'static str; N], f: impl FnOnce(&M) -> R) -> R {
        f(&self.family().get_or_create(&self.series(values)))
    }

    fn read<R>(&self, values: [&'static str; N], f: impl FnOnce(&M) -> R) -> Option<R> {
        self.family().get(&self.series(values)).map(|m| f(&m))
    }

    /// Drops every series (a gauge whose values are no longer known is left out).
    pub fn clear(&self) {
        self.family().clear();
    }
}

impl<const N: usize> Counter<N> {
    /// A counter named `name` (ending in `_total`) with these label names.
    pub const fn counter(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str; N],
    ) -> Self {
        Self::with(name, help, labels, &[])
    }

    /// Adds one.
    pub fn inc(&self, values: [&'static str; N]) {
        self.add(values, 1);
    }

    /// Adds `by` (0 creates the series without counting anything).
    pub fn add(&self, values: [&'static str; N], by: u64) {
        self.with_series(values, |c| c.inc_by(by));
    }

    /// The current count of a series, if it exists (tests).
    pub fn get(&self, values: [&'static str; N]) -> Option<u64> {
        self.read(values, Count::get)
    }
}

impl<const N: usize> Gauge<N> {
    /// A whole-valued gauge with these label names.
    pub const fn gauge(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str; N],
    ) -> Self {
        Self::with(name, help, labels, &[])
    }

    /// Sets a series; a value beyond `i64` (a `u64` count, never in practice) saturates.
    pub fn set(&self, values: [&'static str; N], to: impl TryInto<i64>) {
        let to = to.try_into().unwrap_or(i64::MAX);
        self.with_series(values, |g| g.set(to));
    }

    /// Adds `by` (negative to subtract; 0 creates the series at 0 without changing it).
    pub fn add(&self, values: [&'static str; N], by: i64) {
        self.with_series(values, |g| g.inc_by(by));
    }

    /// The current value of a series, if it exists (tests).
    pub fn get(&self, values: [&'static str; N]) -> Option<i64> {
        self.read(values, Level::get)
    }
}

impl<const N: usize> FloatGauge<N> {
    /// A fractional gauge with these label names.
    pub const fn float_gauge(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str; N],
    ) -> Self {
        Self::with(name, help, labels, &[])
    }

    /// Sets a series.
    pub fn set(&self, values: [&'static str; N], to: f64) {
        self.with_series(values, |g| g.set(to));
    }

    /// The current value of a series, if it exists (tests).
    pub fn get(&self, values: [&'static str; N]) -> Option<f64> {
        self.read(values, Level::get)
    }
}

impl<const N: usize> Histogram<N> {
    /// A histogram with these bucket upper bounds (ascending; `+Inf` is implied).
    pub const fn histogram(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str; N],
        buckets: &'static [f64],
    ) -> Self {
        Self::with(name, help, labels, buckets)
    }

    /// Records one observation.
    pub fn observe(&self, values: [&'static str; N], observed: f64) {
        self.with_series(values, |h| h.observe(observed));
    }
}

/// A family a process exports: registers itself with the registry a scrape is encoded from.
pub trait Exported: Sync {
    /// Adds this family to `registry`.
    fn register(&self, registry: &mut Registry);
}

impl<const N: usize, M> Exported for Metric<N, M>
where
    M: EncodeMetric + TypedMetric + fmt::Debug + Send + Sync + 'static,
    New: MetricConstructor<M>,
{
    fn register(&self, registry: &mut Registry) {
        // The encoder appends `_total` to counters and the registry a full stop to help texts:
        // declared here as exported, they are handed over without them.
        let name = match M::TYPE {
            MetricType::Counter => self.name.strip_suffix("_total").unwrap_or(self.name),
            _ => self.name,
        };
        let help = self.help.strip_suffix('.').unwrap_or(self.help);
        registry.register(name, help, Described(self.family().clone()));
    }
}

/// The text exposition of `families`, in order, followed by the process metrics (memory, CPU,
/// start time, build).
pub fn render(families: &[&dyn Exported]) -> String {
    // A registry per scrape: a few dozen handles cloned, against a long-lived one that every
    // process and test would have to build with exactly its own families.
    let mut registry = Registry::default();
    for family in families {
        family.register(&mut registry);
    }
    registry.register_collector(Box::new(super::process::Process));
    let mut out = String::new();
    // Writing to a `String` cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The label values of one series, with its family's label names to encode them. Only the
/// values are compared and hashed: the names are the same for every series of a family.
#[derive(Clone, Copy, Debug)]
pub struct Series<const N: usize> {
    names: &'static [&'static str; N],
    values: [&'static str; N],
}

impl<const N: usize> PartialEq for Series<N> {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl<const N: usize> Eq for Series<N> {}

impl<const N: usize> Hash for Series<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.values.hash(state);
    }
}

impl<const N: usize> EncodeLabelSet for Series<N> {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        for pair in self.names.iter().copied().zip(self.values) {
            EncodeLabel::encode(&pair, encoder.encode_label())?;
        }
        Ok(())
    }
}

/// Builds a family's series: histograms with the family's buckets, the rest at zero.
#[derive(Clone, Copy, Debug)]
pub struct New {
    buckets: &'static [f64],
}

impl MetricConstructor<Count> for New {
    fn new_metric(&self) -> Count {
        Count::default()
    }
}

impl MetricConstructor<Level> for New {
    fn new_metric(&self) -> Level {
        Level::default()
    }
}

impl MetricConstructor<Level<f64, AtomicU64>> for New {
    fn new_metric(&self) -> Level<f64, AtomicU64> {
        Level::default()
    }
}

impl MetricConstructor<Distribution> for New {
    fn new_metric(&self) -> Distribution {
        Distribution::new(self.buckets.iter().copied())
    }
}

/// A family that is described (`# HELP`, `# TYPE`) before its first series too, as scrapers
/// and dashboards have always seen it; `prometheus-client` leaves empty families out.
#[derive(Debug)]
struct Described<F>(F);

impl<F: EncodeMetric> EncodeMetric for Described<F> {
    fn encode(&self, encoder: MetricEncoder<'_>) -> fmt::Result {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static REQUESTS: Counter<2> =
        Counter::counter("t_requests_total", "Requests.", &["route", "status"]);
    static DEPTH: Gauge<0> = Gauge::gauge("t_depth", "Depth.", &[]);
    static AGE: FloatGauge<1> = FloatGauge::float_gauge("t_age_seconds", "Age.", &["queue"]);
    static LATENCY: Histogram<1> =
        Histogram::histogram("t_seconds", "Latency.", &["route"], &[0.1, 1.0]);
    static UNUSED: Gauge<1> = Gauge::gauge("t_unused", "Never set.", &["x"]);

    #[test]
    fn families_render_in_the_prometheus_text_format() {
        REQUESTS.inc(["get_x", "200"]);
        REQUESTS.inc(["get_x", "200"]);
        REQUESTS.inc(["say \"hi\"", "500"]);
        DEPTH.set([], 3);
        AGE.set(["checkout"], 12.5);
        LATENCY.observe(["get_x"], 0.0625);
        LATENCY.observe(["get_x"], 0.5);
        LATENCY.observe(["get_x"], 5.0);

        let text = render(&[&REQUESTS, &DEPTH, &AGE, &LATENCY, &UNUSED]);

        for line in [
            "# HELP t_requests_total Requests.\n",
            "# TYPE t_requests_total counter\n",
            "t_requests_total{route=\"get_x\",status=\"200\"} 2\n",
            "t_requests_total{route=\"say \\\"hi\\\"\",status=\"500\"} 1\n",
            "# TYPE t_depth gauge\n",
            "\nt_depth 3\n",
            "t_age_seconds{queue=\"checkout\"} 12.5\n",
            "# TYPE t_seconds histogram\n",
            "t_seconds_bucket{route=\"get_x\",le=\"0.1\"} 1\n",
            "t_seconds_bucket{route=\"get_x\",le=\"1\"} 2\n",
            "t_seconds_bucket{route=\"get_x\",le=\"+Inf\"} 3\n",
            "t_seconds_sum{route=\"get_x\"} 5.5625\n",
            "t_seconds_count{route=\"get_x\"} 3\n",
            // A family without series is still described.
            "# HELP t_unused Never set.\n# TYPE t_unused gauge\n",
            "# TYPE process_resident_memory_bytes gauge\n",
        ] {
            assert!(text.contains(line), "no {line:?} in:\n{text}");
        }
        assert!(!text.contains("t_requests_total_total"), "{text}");
        assert!(!text.contains(".."), "{text}");
        assert_eq!(REQUESTS.get(["get_x", "200"]), Some(2));
        assert_eq!(REQUESTS.get(["get_x", "404"]), None);
    }

    #[test]
    fn a_cleared_family_has_no_series() {
        static LEFT_OUT: Gauge<1> = Gauge::gauge("t_left_out", "Cleared.", &["queue"]);
        LEFT_OUT.set(["a"], 1);
        LEFT_OUT.clear();

        let text = render(&[&LEFT_OUT]);

        assert!(text.contains("# TYPE t_left_out gauge\n"), "{text}");
        assert!(!text.contains("t_left_out{"), "{text}");
        assert_eq!(LEFT_OUT.get(["a"]), None);
    }
}
