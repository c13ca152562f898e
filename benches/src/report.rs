//! Medians over runs and the markdown table with ratios.

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
    values: BTreeMap<(Metric, usize), Vec<f64>>,
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

    pub fn add(&mut self, m: Metric, path: usize, v: f64) {
        self.values.entry((m, path)).or_default().push(v);
    }

    pub fn note(&mut self, n: String) {
        self.notes.push(n);
    }

    fn median(&self, m: Metric, path: usize) -> Option<f64> {
        let mut v = self.values.get(&(m, path))?.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
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
            let direct = self.median(m, 0).or_else(|| {
                let plain = match m {
                    Metric::SetupRateResumed => Metric::SetupRateFull,
                    Metric::SetupP50Resumed => Metric::SetupP50Full,
                    Metric::SetupP99Resumed => Metric::SetupP99Full,
                    _ => return None,
                };
                self.median(plain, 0)
            });
            let best = self.best_peer(m);
            s.push_str(&format!("| {} |", m.label(self.far_rtt_ms)));
            for i in 0..self.paths.len() {
                match self.median(m, i) {
                    None => s.push_str(" — |"),
                    Some(v) => {
                        s.push_str(&format!(" {}", fmt(v)));
                        let mut ratios = Vec::new();
                        if i != 0 {
                            if let Some(d) = direct.filter(|d| *d > 0.0) {
                                ratios.push(format!("{:.2}×d", v / d));
                            }
                        }
                        if let Some((bi, b)) = best {
                            if bi != i && b > 0.0 {
                                ratios.push(format!("{:.2}×p", v / b));
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
        s.push_str(&format!(
            "\n×d: ratio to direct loopback TCP; ×p: ratio to the best peer ({}) \
             in the same run; for times and CPU lower is better.\n",
            self.peers_are
        ));
        // Added latency over direct, the targets' unit.
        for (i, (name, _)) in self.paths.iter().enumerate().skip(1) {
            let add = |m| Some(self.median(m, i)? - self.median(m, 0)?);
            if let (Some(a), Some(b)) = (add(Metric::RttP50), add(Metric::RttP50Loaded)) {
                s.push_str(&format!(
                    "\n- {name}: adds {a:.0} us p50 idle, {b:.0} us p50 with a saturated neighbour"
                ));
            }
        }
        s.push('\n');
        for n in &self.notes {
            s.push_str(&format!("\n- note: {n}"));
        }
        s
    }
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
