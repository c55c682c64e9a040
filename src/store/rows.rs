//! Rows as both backends store them, before their texts are parsed: the one
//! place that turns stored text (states, codes, JSON) back into the model.

use super::{Result, StoreError, StoredFailure};
use crate::model::failure::FailureState;
use crate::model::order::{FailedBody, FailedOrder};
use crate::model::run::{Counts, RunInput, RunKind, RunRecord, RunStatus, RunSummary};
use crate::model::{ErrorCode, ReportFormat};

fn damaged(db: &str, what: String) -> StoreError {
    StoreError::Damaged {
        db: db.to_string(),
        what,
    }
}

/// A failed_orders row as stored.
pub struct StoredRow {
    pub id: i64,
    pub run_id: i64,
    pub seq: i64,
    pub state: String,
    pub order_id: Option<String>,
    pub code: String,
    pub detail: String,
    pub source_file: String,
    pub source_line: i64,
    pub body: String,
}

impl StoredRow {
    pub fn into_failure(self, db: &str) -> Result<StoredFailure> {
        let state = FailureState::parse(&self.state).ok_or_else(|| {
            damaged(
                db,
                format!("failure {}: unknown state {:?}", self.id, self.state),
            )
        })?;
        let code = ErrorCode::parse(&self.code).ok_or_else(|| {
            damaged(
                db,
                format!("failure {}: unknown error code {:?}", self.id, self.code),
            )
        })?;
        let body = serde_json::from_str::<FailedBody>(&self.body).map_err(|e| {
            damaged(
                db,
                format!("failure {}: its rows do not parse: {e}", self.id),
            )
        })?;
        Ok(StoredFailure {
            id: self.id,
            run_id: self.run_id,
            seq: self.seq.max(0) as u64,
            state,
            order: FailedOrder {
                order_id: self.order_id,
                code,
                stored_detail: self.detail,
                source_file: self.source_file,
                source_line: self.source_line.max(0) as u64,
                body,
            },
        })
    }
}

/// A runs row as stored, before its texts are parsed.
pub struct RawRun {
    pub id: i64,
    pub command: String,
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    /// orders, accepted, skipped, failed, lines, units
    pub counts: [i64; 6],
    pub errors_by_code: String,
    pub retried_runs: String,
    pub report_format: String,
    pub message: Option<String>,
    pub host: Option<String>,
}

impl RawRun {
    pub fn into_record(self, db: &str, inputs: Vec<RunInput>) -> Result<RunRecord> {
        let bad = |what: &str, v: &str| damaged(db, format!("run {}: {what} {v:?}", self.id));
        let by_code: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&self.errors_by_code)
                .map_err(|_| bad("errors_by_code", &self.errors_by_code))?;
        let mut counts = Counts {
            orders: self.counts[0] as u64,
            accepted: self.counts[1] as u64,
            skipped: self.counts[2] as u64,
            failed: self.counts[3] as u64,
            lines: self.counts[4] as u64,
            units: self.counts[5],
            by_code: [0; 12],
        };
        for (code, n) in &by_code {
            if let Some(c) = ErrorCode::parse(code) {
                counts.by_code[c as usize] = n.as_u64().unwrap_or(0);
            }
        }
        let status = RunStatus::parse(&self.status).ok_or_else(|| bad("status", &self.status))?;
        Ok(RunRecord {
            summary: RunSummary {
                run_id: self.id,
                status,
                finished_at: self.finished_at.clone().unwrap_or_default(),
                started_at: self.started_at.clone(),
                duration_ms: self.duration_ms.unwrap_or(0).max(0) as u64,
                inputs,
                counts,
            },
            kind: RunKind::parse(&self.command).ok_or_else(|| bad("command", &self.command))?,
            report_format: ReportFormat::parse(&self.report_format).unwrap_or(ReportFormat::Csv),
            retried_runs: serde_json::from_str(&self.retried_runs)
                .map_err(|_| bad("retried_runs", &self.retried_runs))?,
            message: self.message,
            host: self.host.unwrap_or_default(),
        })
    }
}

/// An order's lines as both backends keep them: `[["sku",quantity,unit_price],...]`;
/// skus need no JSON escaping (A-Z a-z 0-9 . _ -).
pub fn items_json(o: &crate::model::order::ValidOrder) -> String {
    let mut items = String::with_capacity(2 + o.lines.len() * 32);
    items.push('[');
    for (i, l) in o.lines.iter().enumerate() {
        if i > 0 {
            items.push(',');
        }
        let mut q = itoa::Buffer::new();
        let mut p = itoa::Buffer::new();
        items.push_str("[\"");
        items.push_str(&l.sku);
        items.push_str("\",");
        items.push_str(q.format(l.quantity));
        items.push(',');
        items.push_str(p.format(l.unit_price));
        items.push(']');
    }
    items.push(']');
    items
}
