//! The Prometheus node-exporter textfile, written atomically (temp file + rename) after
//! every job and peer synchronisation.

use super::Agent;

impl Agent {
    /// Writes the textfile, if one is configured.
    pub fn write_metrics(&self) {
        let Some(path) = &self.cfg.site.metrics_file else {
            return;
        };
        let Ok(history) = self.history() else { return };
        let mut m = String::new();
        m.push_str("# HELP coop_job_last_run_timestamp_seconds Start of the last run of a coop job.\n# TYPE coop_job_last_run_timestamp_seconds gauge\n");
        let mut status = String::from("# HELP coop_job_last_success Whether the last run of a coop job succeeded (1) or failed (0).\n# TYPE coop_job_last_success gauge\n");
        let mut added = String::from("# HELP coop_job_last_bytes_added Bytes of new data the last run uploaded.\n# TYPE coop_job_last_bytes_added gauge\n");
        for j in &self.cfg.jobs {
            if let Ok(Some(r)) = history.last_run(&j.name) {
                m.push_str(&format!(
                    "coop_job_last_run_timestamp_seconds{{site=\"{}\",job=\"{}\"}} {}\n",
                    self.cfg.site.name, j.name, r.started
                ));
                status.push_str(&format!(
                    "coop_job_last_success{{site=\"{}\",job=\"{}\"}} {}\n",
                    self.cfg.site.name,
                    j.name,
                    (r.status == "ok") as u8
                ));
                added.push_str(&format!(
                    "coop_job_last_bytes_added{{site=\"{}\",job=\"{}\"}} {}\n",
                    self.cfg.site.name, j.name, r.bytes_added
                ));
            }
        }
        m.push_str(&status);
        m.push_str(&added);
        m.push_str("# HELP coop_peer_last_success_timestamp_seconds Last successful replication to a peer.\n# TYPE coop_peer_last_success_timestamp_seconds gauge\n");
        let mut fails = String::from("# HELP coop_peer_consecutive_failures Failed replication attempts to a peer since its last success.\n# TYPE coop_peer_consecutive_failures gauge\n");
        for p in &self.cfg.peers {
            if let Ok(st) = history.peer(&p.name) {
                m.push_str(&format!(
                    "coop_peer_last_success_timestamp_seconds{{site=\"{}\",peer=\"{}\"}} {}\n",
                    self.cfg.site.name,
                    p.name,
                    st.last_ok.unwrap_or(0)
                ));
                fails.push_str(&format!(
                    "coop_peer_consecutive_failures{{site=\"{}\",peer=\"{}\"}} {}\n",
                    self.cfg.site.name, p.name, st.failures
                ));
            }
        }
        m.push_str(&fails);
        let tmp = path.with_extension("prom.tmp");
        if std::fs::write(&tmp, m)
            .and_then(|_| std::fs::rename(&tmp, path))
            .is_err()
        {
            tracing::warn!("cannot write metrics file {}", path.display());
        }
    }
}
