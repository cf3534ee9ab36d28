//! What rdsinit did, as text for a person and as JSON for a script.

use std::path::PathBuf;

use rvm::format::segment::SEGMENT_HEADER_SIZE;
use serde_json::json;

use crate::heap::Inspection;
use crate::number::hex_dec;
use crate::params::{Field, Params};

/// How the parameters are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Asked one by one.
    Interactive,
    /// Given, shown, and confirmed by the user.
    Confirm,
    /// Given, no questions (`-f`, `--yes`).
    Firm,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Interactive => "interactive",
            Mode::Confirm => "confirm",
            Mode::Firm => "firm",
        }
    }
}

/// What rdsinit did (or, with `--dry-run`, would do).
#[derive(Debug, Clone)]
pub struct Report {
    pub dry_run: bool,
    pub mode: Mode,
    pub params: Params,
    pub log_path: PathBuf,
    pub log_size_bytes: u64,
    pub log_action: &'static str,
    pub data_path: PathBuf,
    pub data_block_device: bool,
    pub data_existed: bool,
    /// How the data blocks were provided: "sparse", "fallocate" or "zero".
    pub data_fill: &'static str,
    pub data_disk_usage_bytes: Option<u64>,
    pub segment_uuid: Option<String>,
    pub heap: Option<Inspection>,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

/// One row of the layout: a part of the segment file and, for a region, where it is mapped.
struct RegionRow {
    name: &'static str,
    offset: u64,
    length: u64,
    addresses: Option<(u64, u64)>,
}

impl Report {
    /// The rows of the layout table.
    fn regions(&self) -> Vec<RegionRow> {
        let p = &self.params;
        let mut rows = vec![
            RegionRow {
                name: "header",
                offset: 0,
                length: SEGMENT_HEADER_SIZE,
                addresses: None,
            },
            RegionRow {
                name: "heap",
                offset: p.heap_offset(),
                length: p.heap_len,
                addresses: Some((p.start_addr, p.static_addr())),
            },
            RegionRow {
                name: "static",
                offset: p.static_offset(),
                length: p.static_len,
                addresses: Some((p.static_addr(), p.end_addr())),
            },
        ];
        if p.unused_len() > 0 {
            rows.push(RegionRow {
                name: "unused",
                offset: p.used_len(),
                length: p.unused_len(),
                addresses: None,
            });
        }
        rows
    }

    pub fn to_text(&self) -> String {
        let p = &self.params;
        let mut s = String::new();
        if self.dry_run {
            s.push_str(
                "rdsinit: dry run: the layout below is valid; nothing was created or changed.\n",
            );
        } else {
            s.push_str(&format!(
                "rdsinit: {} initialized with an RDS heap (log {}).\n",
                self.data_path.display(),
                self.log_path.display()
            ));
        }
        for note in &self.notes {
            s.push_str(&format!("note: {note}\n"));
        }
        s.push_str(&format!(
            "Segment {}: {} bytes{}\n",
            self.data_path.display(),
            hex_dec(p.data_len),
            self.segment_uuid
                .as_ref()
                .map(|u| format!(", uuid {u}"))
                .unwrap_or_default()
        ));
        s.push_str("  region  offset        length                      address\n");
        for row in self.regions() {
            let range = row
                .addresses
                .map(|(a, b)| format!("{a:#x}..{b:#x}"))
                .unwrap_or_else(|| "-".into());
            s.push_str(&format!(
                "  {:<7} {:<13} {:<27} {range}\n",
                row.name,
                format!("{:#x}", row.offset),
                hex_dec(row.length)
            ));
        }
        s.push_str(&format!(
            "Heap: nlists {}, chunk size {}\n",
            p.nlists, p.chunk_size
        ));
        s.push_str(&format!(
            "Log: {}, {} bytes ({})\n",
            self.log_path.display(),
            self.log_size_bytes,
            if self.dry_run {
                match self.log_action {
                    "created" => "would be created",
                    "reinitialized" => "would be re-initialized",
                    _ => "used",
                }
            } else {
                self.log_action
            }
        ));
        if let Some(usage) = self.data_disk_usage_bytes {
            s.push_str(&format!(
                "Data file: {} bytes on disk ({})\n",
                usage, self.data_fill
            ));
        }
        if let Some(heap) = &self.heap {
            s.push_str("Heap check: ok\n");
            if !heap.statistics.is_empty() {
                s.push_str("Heap statistics:\n");
                for (name, value) in &heap.statistics {
                    s.push_str(&format!("  {name:<24} {value}\n"));
                }
            }
        }
        s
    }

    /// The log's action for JSON: a dry run says what it would do, never "created".
    fn json_log_action(&self) -> &'static str {
        match (self.dry_run, self.log_action) {
            (false, action) => action,
            (true, "created") => "would_create",
            (true, "reinitialized") => "would_reinitialize",
            (true, _) => "would_use",
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let p = &self.params;
        let mut parameters = serde_json::Map::new();
        for field in Field::ALL {
            parameters.insert(field.key().into(), json!(p.get(field)));
        }
        let regions: Vec<serde_json::Value> = self
            .regions()
            .into_iter()
            .map(|row| {
                let mut r = json!({"name": row.name, "offset": row.offset, "length": row.length});
                if let Some((a, b)) = row.addresses {
                    r["address"] = json!(a);
                    r["end_address"] = json!(b);
                }
                r
            })
            .collect();
        let heap = self.heap.as_ref().map(|h| {
            let stats: serde_json::Map<String, serde_json::Value> = h
                .statistics
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            json!({"check": "ok", "statistics": stats})
        });
        json!({
            "ok": true,
            "dry_run": self.dry_run,
            "mode": self.mode.name(),
            "parameters": parameters,
            "regions": regions,
            "log": {
                "path": self.log_path.display().to_string(),
                "size_bytes": self.log_size_bytes,
                "action": self.json_log_action(),
            },
            "data": {
                "path": self.data_path.display().to_string(),
                "length_bytes": p.data_len,
                "block_device": self.data_block_device,
                "existed": self.data_existed,
                "fill": self.data_fill,
                "disk_usage_bytes": self.data_disk_usage_bytes,
            },
            "segment_uuid": self.segment_uuid,
            "heap": heap,
            "notes": self.notes,
            "warnings": self.warnings,
        })
    }
}
