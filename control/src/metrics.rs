//! `/metrics`: every crate records its own counters without contention and declares its
//! families once, as a table of [`Metric`] rows (`tempmx_ingress::metrics`,
//! `tempmx_store::metrics`, `tempmx_dns::metrics`, and the control plane's own in
//! [`control`]); this module only walks those tables at scrape time and renders the text
//! format.
//!
//! The data planes keep per-core (or per-worker) counters and expose summed snapshots; a
//! scrape reads those snapshots through registered sources, so counting on the hot path
//! costs one uncontended store. Control-plane metrics (HTTP requests) live in the registry.

use parking_lot::RwLock;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric as Series, MetricFamily, MetricType,
};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
/// The one descriptor type every crate declares its metrics with.
pub use tempmx_store::metrics::{Metric, MetricDesc as Desc, MetricKind as Kind, Values};

pub mod control;
pub mod process;

pub use control::{BLOCKLIST_LISTED, ProcessFacts, ProcessState};

/// A function that appends metric families read from one component.
type Source = Box<dyn Fn(&mut Vec<MetricFamily>) + Send + Sync>;

/// The registry plus the scrape-time sources.
pub struct Metrics {
    registry: Registry,
    sources: RwLock<Vec<Source>>,
    /// The fleet node name every series is labelled with (`node`), in fleet mode.
    node: Option<String>,
    /// HTTP requests by listener, route and status.
    pub http_requests: IntCounterVec,
    /// HTTP request latency by listener and route.
    pub http_duration: HistogramVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The registry of a fleet node named `node` (or of a lone appliance with `None`).
    ///
    /// Every series gets a constant `node` label rather than one
    /// `tempmx_fleet_node_info{node}` series joined in by relabelling: panels and alerts
    /// can then group and name a node with a plain `by (node)`, with no `group_left` join
    /// that breaks while the info series is missing, and the name survives an address
    /// change or federation, which the scrape's `instance` label does not.
    pub fn for_node(node: Option<String>) -> Self {
        Self {
            node,
            ..Self::new()
        }
    }

    /// A registry with the control plane's own metrics registered.
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(control::HTTP_REQUESTS.name, control::HTTP_REQUESTS.help),
            &["listener", "route", "status"],
        )
        .expect("static metric definition is valid");
        let duration = control::HTTP_REQUEST_DURATION;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(duration.name, duration.help).buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["listener", "route"],
        )
        .expect("static metric definition is valid");
        registry
            .register(Box::new(http_requests.clone()))
            .expect("registered once");
        registry
            .register(Box::new(http_duration.clone()))
            .expect("registered once");
        Self {
            registry,
            sources: RwLock::new(Vec::new()),
            node: None,
            http_requests,
            http_duration,
        }
    }

    /// Adds a component whose snapshot is read at every scrape.
    pub fn add_source(&self, source: impl Fn(&mut Vec<MetricFamily>) + Send + Sync + 'static) {
        self.sources.write().push(Box::new(source));
    }

    /// Adds a component's table, read from the snapshot `snapshot` gives at every scrape.
    pub fn add_table<S: 'static>(
        &self,
        table: &'static [Metric<S>],
        snapshot: impl Fn() -> S + Send + Sync + 'static,
    ) {
        self.add_source(move |out| export(table, &snapshot(), out));
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut families = self.registry.gather();
        for source in self.sources.read().iter() {
            source(&mut families);
        }
        // The text format has no way to say "a family with no series" (no listed domain yet).
        families.retain(|f| !f.get_metric().is_empty());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        if let Some(node) = &self.node {
            for series in families.iter_mut().flat_map(|f| f.mut_metric().iter_mut()) {
                let mut l = LabelPair::default();
                l.set_name("node".to_owned());
                l.set_value(node.clone());
                let mut labels = series.take_label();
                labels.push(l);
                series.set_label(labels);
            }
        }
        let mut out = Vec::new();
        TextEncoder::new().encode(&families, &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// Every metric the appliance declares, from every crate's table.
pub fn declared() -> Vec<Desc> {
    use tempmx_store::metrics::descs;
    let ingress = descs(tempmx_ingress::metrics::SMTP)
        .chain(descs(tempmx_ingress::metrics::AUTH))
        .chain(descs(tempmx_ingress::metrics::GREYLIST));
    ingress
        .chain(descs(tempmx_store::metrics::TABLE))
        .chain(descs(tempmx_dns::metrics::TABLE))
        .chain(descs(tempmx_store::cluster::METRICS))
        .chain(control::declared())
        .collect()
}

/// Appends the families of `table` read from `snapshot`.
pub fn export<S>(table: &[Metric<S>], snapshot: &S, out: &mut Vec<MetricFamily>) {
    out.extend(table.iter().map(|m| family(m.desc, m.read(snapshot))));
}

/// One Prometheus family from a descriptor and its values. Values that do not fit the
/// declared type (a histogram declared as a counter, or the reverse) are a bug: logged,
/// and the family left empty (so it is not rendered).
fn family(desc: Desc, values: Values) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(desc.name.to_owned());
    f.set_help(desc.help.to_owned());
    match (desc.kind, values) {
        (
            Kind::Histogram,
            Values::Histogram {
                bounds,
                counts,
                sum,
            },
        ) => {
            f.set_field_type(MetricType::HISTOGRAM);
            f.set_metric(vec![histogram(&bounds, &counts, sum)]);
        }
        (kind @ (Kind::Counter | Kind::Gauge), Values::Samples(samples)) => {
            f.set_field_type(match kind {
                Kind::Counter => MetricType::COUNTER,
                _ => MetricType::GAUGE,
            });
            f.set_metric(samples.into_iter().map(|s| series(kind, s)).collect());
        }
        _ => tracing::error!(metric = desc.name, "values do not match the declared type"),
    }
    f
}

/// One counter or gauge series.
fn series(kind: Kind, sample: tempmx_store::metrics::Sample) -> Series {
    let mut m = Series::default();
    m.set_label(
        sample
            .labels
            .into_iter()
            .map(|(k, v)| {
                let mut l = LabelPair::default();
                l.set_name(k.to_owned());
                l.set_value(v);
                l
            })
            .collect(),
    );
    if kind == Kind::Counter {
        let mut c = Counter::default();
        c.set_value(sample.value);
        m.set_counter(c);
    } else {
        let mut g = Gauge::default();
        g.set_value(sample.value);
        m.set_gauge(g);
    }
    m
}

/// One unlabelled histogram series from per-bucket (not cumulative) counts; the last
/// count is the +Inf bucket.
fn histogram(bounds: &[f64], counts: &[u64], sum: f64) -> Series {
    let mut h = Histogram::default();
    let mut cumulative = 0;
    let buckets = bounds
        .iter()
        .zip(counts)
        .map(|(bound, n)| {
            cumulative += n;
            let mut b = Bucket::default();
            b.set_upper_bound(*bound);
            b.set_cumulative_count(cumulative);
            b
        })
        .collect();
    h.set_bucket(buckets);
    h.set_sample_count(counts.iter().sum());
    h.set_sample_sum(sum);
    let mut m = Series::default();
    m.set_histogram(h);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: every declared name, from every crate, follows the conventions (prefix, help,
    // `_total` exactly on counters) and is unique across crates. Method: walk `declared()`.
    #[test]
    fn declared_metrics_are_well_formed() {
        let all = declared();
        for (i, d) in all.iter().enumerate() {
            assert!(d.name.starts_with("tempmx_"), "{}", d.name);
            assert!(!d.help.is_empty(), "{}", d.name);
            assert_eq!(
                d.kind == Kind::Counter,
                d.name.ends_with("_total"),
                "{}",
                d.name
            );
            assert!(all[..i].iter().all(|o| o.name != d.name), "{}", d.name);
        }
        assert!(all.len() > 40, "{}", all.len());
    }
}
