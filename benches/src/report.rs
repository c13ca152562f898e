//! Medians over runs and the markdown table with ratios.
//!
//! A cell shows the median of a path's runs; its ratios are paired: each run's
//! value divided by the other path's value in the same run, and the median of
//! those. Runs of one build drift by 10-20 % with the machine's state, and the
//! paths of one run share that state, so a paired ratio is steadier than a
//! ratio of two medians taken from different runs.

use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    Up1,
    Down1,
    Up8,
    Down8,
    Up1Far,
    Down1Far,
    RttP50Far,
    CpuPerGb,
    RttP50,
    RttP99,
    RttP50Loaded,
    RttP99Loaded,
    SetupRateFull,
    SetupP50Full,
    SetupP99Full,
    SetupRateResumed,
    SetupP50Resumed,
    SetupP99Resumed,
}

impl Metric {
    fn label(self, far_rtt_ms: u64) -> String {
        let fixed = match self {
            Metric::Up1Far => return format!("1 stream up, {far_rtt_ms} ms RTT site link, MB/s"),
            Metric::Down1Far => {
                return format!("1 stream down, {far_rtt_ms} ms RTT site link, MB/s")
            }
            Metric::RttP50Far => return format!("64 B RTT p50, {far_rtt_ms} ms RTT site link, ms"),
            Metric::Up1 => "1 stream up, MB/s",
            Metric::Down1 => "1 stream down, MB/s",
            Metric::Up8 => "8 streams up (total), MB/s",
            Metric::Down8 => "8 streams down (total), MB/s",
            Metric::CpuPerGb => "CPU s per GB (path's processes, 1-stream runs)",
            Metric::RttP50 => "64 B RTT p50 idle, us",
            Metric::RttP99 => "64 B RTT p99 idle, us",
            Metric::RttP50Loaded => "64 B RTT p50, other stream saturated, us",
            Metric::RttP99Loaded => "64 B RTT p99, other stream saturated, us",
            Metric::SetupRateFull => "set-ups/s, full TLS handshake",
            Metric::SetupP50Full => "set-up p50, full TLS, ms",
            Metric::SetupP99Full => "set-up p99, full TLS, ms",
            Metric::SetupRateResumed => "set-ups/s, TLS resumption",
            Metric::SetupP50Resumed => "set-up p50, TLS resumption, ms",
            Metric::SetupP99Resumed => "set-up p99, TLS resumption, ms",
        };
        fixed.to_string()
    }

    /// The label without its unit, for run-by-run lines.
    fn short_label(self) -> String {
        match self {
            Metric::Up1 => "1 stream up".into(),
            Metric::Down1 => "1 stream down".into(),
            Metric::Up8 => "8 streams up".into(),
            Metric::Down8 => "8 streams down".into(),
            Metric::CpuPerGb => "CPU per GB".into(),
            other => other.label(0),
        }
    }

    fn higher_is_better(self) -> bool {
        matches!(
            self,
            Metric::Up1
                | Metric::Down1
                | Metric::Up1Far
                | Metric::Down1Far
                | Metric::Up8
                | Metric::Down8
                | Metric::SetupRateFull
                | Metric::SetupRateResumed
        )
    }
}

pub struct Table {
    /// (name, counts as a peer for "best peer").
    paths: Vec<(String, bool)>,
    /// Each run's value, with the run's number for pairing.
    values: BTreeMap<(Metric, usize), Vec<(usize, f64)>>,
    /// The run that [`Table::add`] records into.
    run: usize,
    /// The column of the reference relay: comgate's cells also show their
    /// ratio to it (the targets name it).
    reference: Option<usize>,
    notes: Vec<String>,
    /// Who counts as a peer, for the footer.
    peers_are: String,
    /// Round trip of the distant-site link, for the labels.
    far_rtt_ms: u64,
}

impl Table {
    pub fn new(paths: Vec<(String, bool)>, peers_are: &str, far_rtt_ms: u64) -> Table {
        Table {
            paths,
            values: BTreeMap::new(),
            run: 0,
            reference: None,
            notes: Vec::new(),
            peers_are: peers_are.to_string(),
            far_rtt_ms,
        }
    }

    /// Copies every run's values of `metrics` from column `from` of `other` to column
    /// `to` of this table.
    pub fn copy_from(&mut self, other: &Table, from: usize, to: usize, metrics: &[Metric]) {
        for &m in metrics {
            if let Some(v) = other.values.get(&(m, from)) {
                self.values.insert((m, to), v.clone());
            }
        }
    }

    /// Marks `path` as the reference relay (see [`Table::reference`]).
    pub fn set_reference(&mut self, path: usize) {
        self.reference = Some(path);
    }

    /// Values added from now on belong to run `run`.
    pub fn start_run(&mut self, run: usize) {
        self.run = run;
    }

    pub fn add(&mut self, m: Metric, path: usize, v: f64) {
        self.values
            .entry((m, path))
            .or_default()
            .push((self.run, v));
    }

    pub fn note(&mut self, n: String) {
        self.notes.push(n);
    }

    fn median(&self, m: Metric, path: usize) -> Option<f64> {
        median(
            self.values
                .get(&(m, path))?
                .iter()
                .map(|&(_, v)| v)
                .collect(),
        )
    }

    /// `f(value of path, value of other)` for each run that has both, in the
    /// order the runs were recorded; `other_m` is the other path's metric.
    /// Cells show the median of these.
    fn paired_runs(
        &self,
        m: Metric,
        path: usize,
        other_m: Metric,
        other: usize,
        f: impl Fn(f64, f64) -> Option<f64>,
    ) -> Vec<f64> {
        let (Some(ours), Some(theirs)) = (
            self.values.get(&(m, path)),
            self.values.get(&(other_m, other)),
        ) else {
            return Vec::new();
        };
        ours.iter()
            .filter_map(|&(run, v)| {
                let &(_, o) = theirs.iter().find(|(r, _)| *r == run)?;
                f(v, o)
            })
            .collect()
    }

    fn paired_ratio(&self, m: Metric, path: usize, other_m: Metric, other: usize) -> Option<f64> {
        median(self.paired_runs(m, path, other_m, other, ratio))
    }

    /// For each path measured against the reference relay, its per-run ratios
    /// on the rows whose targets name the relay: a median of three next to a
    /// target (0.95) says little without the spread it was taken from.
    fn reference_spread(&self) -> String {
        let Some(ri) = self.reference else {
            return String::new();
        };
        let rows = [
            Metric::Up1,
            Metric::Down1,
            Metric::Up8,
            Metric::Down8,
            Metric::CpuPerGb,
        ];
        let mut s = String::new();
        for (i, (name, is_peer)) in self.paths.iter().enumerate().skip(1) {
            if i == ri || *is_peer {
                continue;
            }
            let parts: Vec<String> = rows
                .iter()
                .filter_map(|&m| {
                    let runs = self.paired_runs(m, i, m, ri, ratio);
                    (!runs.is_empty()).then(|| {
                        let each: Vec<String> = runs.iter().map(|r| format!("{r:.2}")).collect();
                        format!("{} {}", m.short_label(), each.join(" / "))
                    })
                })
                .collect();
            if !parts.is_empty() {
                s.push_str(&format!(
                    "\n- {name} against the {}, run by run: {}",
                    self.paths[ri].0,
                    parts.join("; ")
                ));
            }
        }
        s
    }

    fn best_peer(&self, m: Metric) -> Option<(usize, f64)> {
        let mut best: Option<(usize, f64)> = None;
        for (i, (_, is_peer)) in self.paths.iter().enumerate() {
            if !is_peer {
                continue;
            }
            if let Some(v) = self.median(m, i) {
                let better = match best {
                    None => true,
                    Some((_, b)) if m.higher_is_better() => v > b,
                    Some((_, b)) => v < b,
                };
                if better {
                    best = Some((i, v));
                }
            }
        }
        best
    }

    pub fn render(&self) -> String {
        let metrics = [
            Metric::Up1,
            Metric::Down1,
            Metric::Up8,
            Metric::Down8,
            Metric::Up1Far,
            Metric::Down1Far,
            Metric::RttP50Far,
            Metric::CpuPerGb,
            Metric::RttP50,
            Metric::RttP99,
            Metric::RttP50Loaded,
            Metric::RttP99Loaded,
            Metric::SetupRateFull,
            Metric::SetupP50Full,
            Metric::SetupP99Full,
            Metric::SetupRateResumed,
            Metric::SetupP50Resumed,
            Metric::SetupP99Resumed,
        ];
        let mut s = String::from("| figure |");
        for (name, _) in &self.paths {
            s.push_str(&format!(" {name} |"));
        }
        s.push_str(" best peer |\n|---|");
        for _ in 0..=self.paths.len() {
            s.push_str("---:|");
        }
        s.push('\n');
        for m in metrics {
            if !(0..self.paths.len()).any(|i| self.median(m, i).is_some()) {
                continue;
            }
            // Direct has no TLS: its resumed set-ups are its plain set-ups.
            let direct_m = match m {
                _ if self.values.contains_key(&(m, 0)) => m,
                Metric::SetupRateResumed => Metric::SetupRateFull,
                Metric::SetupP50Resumed => Metric::SetupP50Full,
                Metric::SetupP99Resumed => Metric::SetupP99Full,
                _ => m,
            };
            let best = self.best_peer(m);
            s.push_str(&format!("| {} |", m.label(self.far_rtt_ms)));
            for i in 0..self.paths.len() {
                match self.median(m, i) {
                    None => s.push_str(" — |"),
                    Some(v) => {
                        s.push_str(&format!(" {}", fmt(v)));
                        let mut ratios = Vec::new();
                        if i != 0 {
                            if let Some(r) = self.paired_ratio(m, i, direct_m, 0) {
                                ratios.push(format!("{r:.2}×d"));
                            }
                        }
                        if let Some((bi, _)) = best {
                            if bi != i {
                                if let Some(r) = self.paired_ratio(m, i, m, bi) {
                                    ratios.push(format!("{r:.2}×p"));
                                }
                            }
                        }
                        if let Some(ri) = self.reference {
                            if i != 0 && i != ri && !self.paths[i].1 {
                                if let Some(r) = self.paired_ratio(m, i, m, ri) {
                                    ratios.push(format!("{r:.2}×r"));
                                }
                            }
                        }
                        if !ratios.is_empty() {
                            s.push_str(&format!(" ({})", ratios.join(", ")));
                        }
                        s.push_str(" |");
                    }
                }
            }
            match best {
                Some((bi, _)) => s.push_str(&format!(" {} |\n", self.paths[bi].0)),
                None => s.push_str(" — |\n"),
            }
        }
        let reference = match self.reference {
            Some(ri) => format!("; ×r: ratio to the {}", self.paths[ri].0),
            None => String::new(),
        };
        s.push_str(&format!(
            "\n×d: ratio to direct loopback TCP; ×p: ratio to the best peer ({}){reference}; \
             each ratio is the median over runs of the ratio within one run; for times and \
             CPU lower is better.\n",
            self.peers_are
        ));
        // Added latency over direct, the targets' unit (paired like the ratios).
        for (i, (name, _)) in self.paths.iter().enumerate().skip(1) {
            let add = |m| median(self.paired_runs(m, i, m, 0, |v, d| Some(v - d)));
            if let (Some(a), Some(b)) = (add(Metric::RttP50), add(Metric::RttP50Loaded)) {
                s.push_str(&format!(
                    "\n- {name}: adds {a:.0} us p50 idle, {b:.0} us p50 with a saturated neighbour"
                ));
            }
        }
        s.push_str(&self.reference_spread());
        s.push('\n');
        for n in &self.notes {
            s.push_str(&format!("\n- note: {n}"));
        }
        s
    }
}

/// `v / o`, or `None` when `o` is not positive.
fn ratio(v: f64, o: f64) -> Option<f64> {
    (o > 0.0).then(|| v / o)
}

/// The median (the upper one of an even count), or `None` for no values.
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(names: &[(&str, bool)]) -> Table {
        let paths = names.iter().map(|(n, p)| (n.to_string(), *p)).collect();
        Table::new(paths, "peer", 20)
    }

    #[test]
    fn cells_show_paired_ratios_and_only_comgate_the_reference_one() {
        let mut t = table(&[
            ("direct", false),
            ("comgate", false),
            ("relay (ref)", false),
            ("peer", true),
        ]);
        t.set_reference(2);
        // (comgate, relay, peer) MB/s per run; direct 10,000 throughout.
        let runs = [
            (900.0, 1000.0, 600.0),
            (1100.0, 1000.0, 700.0),
            (700.0, 800.0, 500.0),
        ];
        for (run, (c, r, p)) in runs.into_iter().enumerate() {
            t.start_run(run);
            t.add(Metric::Up1, 0, 10_000.0);
            t.add(Metric::Up1, 1, c);
            t.add(Metric::Up1, 2, r);
            t.add(Metric::Up1, 3, p);
        }
        // A run that only comgate has counts for its median, not for pairs.
        t.start_run(3);
        t.add(Metric::Up1, 1, 5000.0);
        let out = t.render();
        let line = out
            .lines()
            .find(|l| l.starts_with("| 1 stream up"))
            .unwrap();
        // comgate: median of 700, 900, 1100, 5000 is 1100; per run against
        // direct 0.09 / 0.11 / 0.07, the peer 1.50 / 1.57 / 1.40, the relay
        // 0.90 / 1.10 / 0.875.
        assert!(line.contains("| 1100 (0.09×d, 1.50×p, 0.90×r) |"), "{line}");
        // The relay itself: 0.10 / 0.10 / 0.08 of direct, 1.67 / 1.43 / 1.60 of the peer.
        assert!(line.contains("| 1000 (0.10×d, 1.60×p) |"), "{line}");
        assert!(out.contains("×r: ratio to the relay (ref)"), "{out}");
        // The spread behind comgate's 0.90×r, run by run; the peer gets none.
        assert!(
            out.contains(
                "- comgate against the relay (ref), run by run: 1 stream up 0.90 / 1.10 / 0.88"
            ),
            "{out}"
        );
        assert!(!out.contains("- peer against"), "{out}");
    }

    #[test]
    fn a_paired_ratio_is_not_a_ratio_of_medians() {
        let mut t = table(&[("direct", false), ("comgate", false)]);
        // Per run 0.8, 0.9, 0.5: median 0.8. The medians (600 and 450) would
        // give 0.75, pairing comgate's middle run with direct's.
        for (run, (d, c)) in [(1000.0, 800.0), (500.0, 450.0), (600.0, 300.0)]
            .into_iter()
            .enumerate()
        {
            t.start_run(run);
            t.add(Metric::Down1, 0, d);
            t.add(Metric::Down1, 1, c);
        }
        let r = t.paired_ratio(Metric::Down1, 1, Metric::Down1, 0).unwrap();
        assert!((r - 0.8).abs() < 1e-9, "{r}");
        // Added latency is paired the same way: 100, 130, 70 over direct
        // gives 100, where the medians (150 - 60) would give 90.
        for (run, (d, c)) in [(50.0, 150.0), (70.0, 200.0), (60.0, 130.0)]
            .into_iter()
            .enumerate()
        {
            t.start_run(run);
            t.add(Metric::RttP50, 0, d);
            t.add(Metric::RttP50, 1, c);
        }
        for (run, c) in [1000.0, 900.0, 1100.0].into_iter().enumerate() {
            t.start_run(run);
            t.add(Metric::RttP50Loaded, 0, 20.0);
            t.add(Metric::RttP50Loaded, 1, c);
        }
        let out = t.render();
        assert!(
            out.contains("- comgate: adds 100 us p50 idle, 980 us p50 with a saturated neighbour"),
            "{out}"
        );
    }
}
