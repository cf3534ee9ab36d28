//! Real crashes: a child process commits transactions in a loop and reports each
//! acknowledged flush commit on a pipe; the parent SIGKILLs it at a random moment, reopens
//! the log, and checks that every acknowledged commit is present and nothing else is. Every
//! transaction also writes one shared counter, so the records of the commits queued before
//! each flush repeat it and are merged (`format::merge`) under the kill too. Every other
//! child maps its segment in copy mode, and every other check reads it through a copy.
//!
//! This is a plain binary (`harness = false`): run without arguments it is the parent; the
//! parent re-runs it with `RVM_KILL9_CHILD` set to be the child.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use rvm::segment::{self, RegionSpec};
use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};

const SLOTS: usize = 512;
const REGION_BYTES: u64 = 16 * 4096;
/// A marker written by transactions that are always aborted: it must never be seen.
const POISON: u64 = 0xdead_dead_dead_dead;
/// Byte offset in the region of the counter every committed transaction sets to its iteration.
const COUNTER: usize = 2 * SLOTS * 8;

fn main() -> ExitCode {
    if let Ok(dir) = std::env::var("RVM_KILL9_CHILD") {
        child(Path::new(&dir));
        return ExitCode::SUCCESS;
    }
    let kills: usize = std::env::var("RVM_KILL9_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    match parent(kills) {
        Ok(()) => {
            println!("kill9: {kills} kills survived");
            println!("1 passed, 0 failed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kill9: FAILED: {e}");
            println!("0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}

/// Slot `i % SLOTS` holds the iteration number `i` of its last write, and slot+SLOTS holds
/// its complement, written in the same transaction (a torn transaction would show); the
/// counter holds the iteration of the last commit.
fn child(dir: &Path) {
    let rvm =
        Rvm::open(dir.join("log"), Options::default().truncate_threshold(30)).expect("child open");
    // Every other child maps in copy mode (the memory is then the process's own, read from
    // the file at map time; it asks for huge pages too, which a 64 KiB region is too small to
    // get); the others map the file privately.
    let copy = std::env::var_os("RVM_KILL9_COPY").is_some();
    let options = MapOptions::anywhere().copy(copy).huge_pages(copy);
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let seg = unsafe { rvm.map(dir.join("data"), options) }.expect("child map");
    let base = seg.regions()[0].address;
    let start: u64 = std::env::var("RVM_KILL9_START").unwrap().parse().unwrap();
    let out = std::io::stdout();
    let mut out = out.lock();
    for i in start.. {
        let slot = (i as usize) % SLOTS;
        // An aborted restore transaction writing poison over a random slot.
        let mut t = rvm.begin(BeginMode::Restore).unwrap();
        t.write(base + ((i as usize * 7) % SLOTS) * 8, &POISON)
            .unwrap();
        t.abort().unwrap();
        let mut tx = rvm.begin(BeginMode::Restore).unwrap();
        tx.write(base + slot * 8, &i).unwrap();
        tx.write(base + (SLOTS + slot) * 8, &!i).unwrap();
        tx.write(base + COUNTER, &i).unwrap();
        let flush = i % 4 == 0;
        tx.end(if flush {
            CommitMode::Flush
        } else {
            CommitMode::NoFlush
        })
        .unwrap();
        if flush {
            // The group this flush wrote repeated the counter: it must have been merged.
            if rvm.statistics().ranges_merged_across_commits == 0 {
                let _ = writeln!(out, "not merged").and_then(|_| out.flush());
                return;
            }
            // Acknowledged: durable from here on.
            if writeln!(out, "{i}").and_then(|_| out.flush()).is_err() {
                return;
            }
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn parent(kills: usize) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("rvm-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Rvm::create_log(dir.join("log"), 256 * 1024).map_err(|e| e.to_string())?;
    let header = segment::layout(
        4096 + REGION_BYTES,
        &[RegionSpec {
            length: REGION_BYTES,
            address: 0x1000_0000_0000,
        }],
    )
    .map_err(|e| e.to_string())?;
    drop(
        segment::create(&dir.join("data"), &header, Default::default())
            .map_err(|e| e.to_string())?,
    );
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut rng = Rng(std::process::id() as u64 * 0x9e37_79b9 + 1);
    // The highest acknowledged iteration per slot, over all rounds.
    let mut acked: Vec<Option<u64>> = vec![None; SLOTS];
    let mut next_start = 1u64;
    let mut total_acked = 0usize;
    for round in 0..kills {
        let mut command = Command::new(&exe);
        if round % 2 == 1 {
            command.env("RVM_KILL9_COPY", "1");
        }
        let mut child = command
            .env("RVM_KILL9_CHILD", &dir)
            .env("RVM_KILL9_START", next_start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().unwrap();
        // Read acknowledgements in a thread; kill after a random delay.
        let reader = std::thread::spawn(move || {
            let (mut seen, mut unmerged) = (Vec::new(), false);
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap_or_default();
                match line.trim().parse::<u64>() {
                    Ok(i) => seen.push(i),
                    Err(_) => {
                        unmerged = line.trim() == "not merged";
                        break;
                    }
                }
            }
            (seen, unmerged)
        });
        std::thread::sleep(Duration::from_millis(5 + rng.next() % 60));
        child.kill().map_err(|e| e.to_string())?; // SIGKILL
        let _ = child.wait();
        let (seen, unmerged) = reader.join().unwrap();
        if unmerged {
            return Err(format!(
                "round {round}: a flush wrote its group without merging the repeated counter"
            ));
        }
        total_acked += seen.len();
        for &i in &seen {
            let slot = (i as usize) % SLOTS;
            acked[slot] = Some(acked[slot].map_or(i, |a| a.max(i)));
        }
        let highest_started = verify(&dir, &acked, round)?;
        next_start = highest_started + 1;
    }
    if total_acked == 0 {
        return Err("no commit was ever acknowledged: the test exercised nothing".into());
    }
    std::fs::remove_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(())
}

/// Reopen and check every slot. Returns the highest iteration found, so the next child
/// continues with larger numbers.
fn verify(dir: &Path, acked: &[Option<u64>], round: usize) -> Result<u64, String> {
    let rvm = Rvm::open(
        dir.join("log"),
        Options::default().background_recovery(false),
    )
    .map_err(|e| format!("round {round}: reopen: {e}"))?;
    // Every other round reads the recovered file through a copy (`map_copy`, safe), the
    // others through a private mapping.
    let seg = if round.is_multiple_of(2) {
        rvm.map_copy(dir.join("data"), MapOptions::anywhere())
    } else {
        // SAFETY: the segment file lives in this test's private temporary directory and
        // nothing shortens it while it is mapped.
        unsafe { rvm.map(dir.join("data"), MapOptions::anywhere()) }
    }
    .map_err(|e| e.to_string())?;
    let base = seg.regions()[0].address;
    let mut highest = 0u64;
    for (slot, acked_slot) in acked.iter().enumerate() {
        let v: u64 = seg.read(base + slot * 8).map_err(|e| e.to_string())?;
        let c: u64 = seg
            .read(base + (SLOTS + slot) * 8)
            .map_err(|e| e.to_string())?;
        if v == POISON || c == POISON {
            return Err(format!(
                "round {round}: slot {slot} holds an aborted transaction's value"
            ));
        }
        if v == 0 && c == 0 {
            if let Some(a) = acked[slot] {
                return Err(format!(
                    "round {round}: slot {slot} is empty but iteration {a} was acknowledged"
                ));
            }
            continue;
        }
        if c != !v {
            return Err(format!(
                "round {round}: slot {slot} is torn: {v:#x} / {c:#x}"
            ));
        }
        if v as usize % SLOTS != slot {
            return Err(format!(
                "round {round}: slot {slot} holds a value ({v}) never written there"
            ));
        }
        if let Some(a) = *acked_slot {
            if v < a {
                return Err(format!(
                    "round {round}: slot {slot} holds {v}, but {a} was acknowledged"
                ));
            }
        }
        highest = highest.max(v);
    }
    // Commits survive as a prefix, so the last one present holds the highest iteration, and
    // it set the counter last: the merged records kept each byte's last value.
    let counter: u64 = seg.read(base + COUNTER).map_err(|e| e.to_string())?;
    if counter != highest {
        return Err(format!(
            "round {round}: the counter holds {counter}, the last commit present is {highest}"
        ));
    }
    rvm.close().map_err(|e| e.to_string())?;
    Ok(highest)
}
