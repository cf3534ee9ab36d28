//! C programs written against the classic headers, compiled with the system C compiler and
//! linked with `-lrvm -lseg -lrds` against this crate's shared library, then run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// Held while this test process has a log or segment open itself (they use fixed addresses,
/// and tests run in parallel threads) and while it starts a child: a child forked while a
/// library file is open would hold that file's lock until it execs.
static MAPPING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn spawn(cmd: &mut Command) -> Child {
    let _mapping = MAPPING.lock().unwrap_or_else(|e| e.into_inner());
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a child process")
}

fn output(cmd: &mut Command) -> Output {
    spawn(cmd)
        .wait_with_output()
        .expect("wait for a child process")
}

/// The directory holding the `librvm_capi.so` built for this test run: the test executable's
/// own directory (`target/debug/deps`; `target/debug` may hold an older copy from
/// `cargo build`).
fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().expect("deps directory").to_path_buf()
}

/// A scratch directory removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("rvm-capi-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A lib directory with the classic names (and the `.so.1` soname) pointing at our library.
fn lib_dir(scratch: &Scratch) -> PathBuf {
    let lib = build_dir().join("librvm_capi.so");
    assert!(lib.exists(), "{} was not built", lib.display());
    let dir = scratch.path("lib");
    std::fs::create_dir_all(&dir).unwrap();
    for name in [
        "rvm", "seg", "rds", "rvmpt", "segpt", "rdspt", "rvmlwp", "seglwp", "rdslwp",
    ] {
        for suffix in [".so", ".so.1"] {
            let link = dir.join(format!("lib{name}{suffix}"));
            if !link.exists() {
                std::os::unix::fs::symlink(&lib, &link).unwrap();
            }
        }
    }
    dir
}

fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

fn source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// Compile `sources` with `compiler` into `out`, linked the classic way.
pub fn compile(scratch: &Scratch, compiler: &str, sources: &[PathBuf], out: &Path, extra: &[&str]) {
    let lib = lib_dir(scratch);
    let mut cmd = Command::new(compiler);
    cmd.arg("-Wall")
        .arg("-Wextra")
        .arg("-Werror")
        .arg("-I")
        .arg(include_dir())
        .arg("-I")
        .arg(source("tests/c"))
        .args(sources)
        .arg("-o")
        .arg(out)
        .args(extra)
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lrvmpt", "-lsegpt", "-lrdspt", "-lpthread"]);
    let output = output(&mut cmd);
    assert!(
        output.status.success(),
        "{compiler} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn run(program: &Path, args: &[&Path]) -> Output {
    output(Command::new(program).args(args))
}

fn expect_success(output: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{what} failed ({:?}):\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn lifecycle_and_error_rules() {
    let s = Scratch::new("lifecycle");
    let exe = s.path("lifecycle");
    compile(
        &s,
        "cc",
        &[source("tests/c/lifecycle.c")],
        &exe,
        &["-std=c99"],
    );
    let out = run(&exe, &[&s.path("log"), &s.path("data")]);
    let stdout = expect_success(&out, "lifecycle");
    assert!(stdout.contains("lifecycle ok"), "{stdout}");
    assert!(stdout.contains("RVM statistics (rvm-rs)"), "{stdout}");
    assert!(stdout.contains("flush commits"), "{stdout}");
}

/// Test 2 on an rvm-rs segment (loaded with `rvm_load_segment`) and on a plain-file region in
/// copy and in private mode (`rvm_map`), each with a fresh log.
#[test]
fn five_open_tids_match_the_expected_image() {
    let s = Scratch::new("five");
    let exe = s.path("five_tids");
    compile(
        &s,
        "cc",
        &[source("tests/c/five_tids.c")],
        &exe,
        &["-std=c99"],
    );
    for mode in ["segment", "copy", "private"] {
        let (log, data) = (
            s.path(&format!("log-{mode}")),
            s.path(&format!("data-{mode}")),
        );
        let out = run(&exe, &[&log, &data, mode.as_ref()]);
        let stdout = expect_success(&out, &format!("five_tids {mode}"));
        assert!(stdout.contains("five tids ok"), "{mode}: {stdout}");
    }
}

#[test]
fn layout_matches_the_reference_from_c_and_cxx() {
    let s = Scratch::new("layout");
    for (compiler, standard) in [("cc", "-std=c11"), ("g++", "-std=c++11")] {
        let exe = s.path(&format!("layout-{compiler}"));
        let mut extra = vec![standard];
        if compiler == "g++" {
            extra.extend(["-x", "c++"]);
        }
        // `-x c++` must come before the source it applies to.
        let lib = lib_dir(&s);
        let mut cmd = Command::new(compiler);
        cmd.args(["-Wall", "-Wextra", "-Werror", "-pedantic"])
            .args(&extra)
            .arg("-I")
            .arg(include_dir())
            .arg(source("tests/c/layout.c"))
            .arg("-x")
            .arg("none")
            .arg("-o")
            .arg(&exe)
            .arg("-L")
            .arg(&lib)
            .arg(format!("-Wl,-rpath,{}", lib.display()))
            .args(["-lrvm", "-lseg", "-lrds"]);
        let out = output(&mut cmd);
        assert!(
            out.status.success(),
            "{compiler}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        expect_success(&run(&exe, &[]), compiler);
    }
}

/// Make LOG and DATA with rdsinit (its library, as the binary runs it).
fn rdsinit(log: &Path, data: &Path) {
    use clap::Parser;
    let _mapping = MAPPING.lock().unwrap_or_else(|e| e.into_inner());
    let args = [
        "rdsinit".to_string(),
        "-f".into(),
        "--log-size".into(),
        "1M".into(),
        log.display().to_string(),
        data.display().to_string(),
        "4M".into(),
        "0x230000000000".into(),
        "2M".into(),
        "64K".into(),
        "80".into(),
        "64".into(),
    ];
    let cli = rdsinit::cli::Cli::parse_from(args);
    assert_eq!(rdsinit::run::main_with(cli), rdsinit::EXIT_OK);
}

/// Check the heap in DATA with the library's checker (after recovery by the C program).
fn heap_checks_clean(log: &Path, data: &Path) {
    let _mapping = MAPPING.lock().unwrap_or_else(|e| e.into_inner());
    let rvm = rvm::Rvm::open(log, rvm::Options::default()).unwrap();
    // SAFETY: the test's files are in its own temporary directory; nothing shortens them.
    let seg = unsafe { rvm.map(data, rvm::MapOptions::default()) }.unwrap();
    let heap = rvm::rds::Heap::load(&seg).unwrap();
    let report = heap.check();
    assert!(report.is_ok(), "{report:?}");
    drop(heap);
    rvm.close().unwrap();
}

/// Run `counter run` until it has acknowledged at least `acks` commits, SIGKILL it, and
/// return the last value it acknowledged (every line it wrote before it died).
fn run_and_kill(exe: &Path, log: &Path, data: &Path, acks: u64) -> u64 {
    run_and_kill_with(
        exe,
        &[log.as_os_str(), data.as_os_str(), "run".as_ref()],
        acks,
    )
}

/// As `run_and_kill`, for a program run with `args`.
fn run_and_kill_with(exe: &Path, args: &[&std::ffi::OsStr], acks: u64) -> u64 {
    use std::io::{BufRead, BufReader};
    let mut child = spawn(Command::new(exe).args(args));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last = 0u64;
    let mut seen = 0;
    while seen < acks {
        match lines.next() {
            Some(Ok(l)) => {
                last = l.trim().parse().unwrap();
                seen += 1;
            }
            _ => {
                let out = child.wait_with_output().unwrap();
                panic!(
                    "counter ended early: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    // SAFETY: kill has no memory-safety preconditions; the pid is our live child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    // Lines written before the kill were acknowledged too.
    for l in lines.map_while(Result::ok) {
        if let Ok(v) = l.trim().parse() {
            last = v;
        }
    }
    child.wait().unwrap();
    last
}

#[test]
fn kill9_loop_recovers_every_acknowledged_commit_on_an_rdsinit_heap() {
    let s = Scratch::new("kill9");
    let exe = s.path("counter");
    compile(
        &s,
        "cc",
        &[source("tests/c/counter.c")],
        &exe,
        &["-std=c99"],
    );
    let (log, data) = (s.path("log"), s.path("data"));
    rdsinit(&log, &data);
    let mut previous = 0;
    for round in 0..12u64 {
        let acked = run_and_kill(&exe, &log, &data, 1 + (round * 7) % 23);
        assert!(acked > previous, "round {round}: no progress");
        let out = run(
            &exe,
            &[&log, &data, "verify".as_ref(), acked.to_string().as_ref()],
        );
        let stdout = expect_success(&out, "counter verify");
        let value: u64 = stdout.trim().trim_start_matches("value ").parse().unwrap();
        assert!(value == acked || value == acked + 1, "{value} vs {acked}");
        previous = value;
        heap_checks_clean(&log, &data);
    }
}

#[test]
fn kill9_loop_recovers_exactly_the_committed_bytes_of_plain_file_regions() {
    let s = Scratch::new("kill9-plain");
    let exe = s.path("plain_counter");
    compile(
        &s,
        "cc",
        &[source("tests/c/plain_counter.c")],
        &exe,
        &["-std=c99"],
    );
    for mode in ["copy", "private"] {
        let (log, data) = (
            s.path(&format!("log-{mode}")),
            s.path(&format!("plain-{mode}")),
        );
        {
            let _mapping = MAPPING.lock().unwrap_or_else(|e| e.into_inner());
            rvm::Rvm::create_log(&log, 1 << 20).unwrap();
        }
        // Three pages and a partial one, all zero.
        std::fs::write(&data, vec![0u8; 3 * 4096 + 1000]).unwrap();
        let mut previous = 0;
        for round in 0..6u64 {
            let args = [
                log.as_os_str(),
                data.as_os_str(),
                mode.as_ref(),
                "run".as_ref(),
            ];
            let acked = run_and_kill_with(&exe, &args, 1 + (round * 7) % 23);
            assert!(acked > previous, "{mode} round {round}: no progress");
            let acked_text = acked.to_string();
            let out = run(
                &exe,
                &[
                    &log,
                    &data,
                    mode.as_ref(),
                    "verify".as_ref(),
                    acked_text.as_ref(),
                ],
            );
            let stdout = expect_success(&out, &format!("plain_counter {mode} verify"));
            let value: u64 = stdout.trim().trim_start_matches("value ").parse().unwrap();
            assert!(
                value == acked || value == acked + 1,
                "{mode}: {value} vs {acked}"
            );
            // Verify truncated and compared memory with the file; the file holds the value.
            let bytes = std::fs::read(&data).unwrap();
            assert_eq!(bytes[..8], value.to_le_bytes(), "{mode}");
            assert_eq!(
                bytes.len(),
                3 * 4096 + 1000,
                "{mode}: the file changed length"
            );
            previous = value;
        }
    }
}

#[test]
fn threads_on_64k_stacks_keep_memory_and_segment_in_agreement() {
    let s = Scratch::new("stress");
    let exe = s.path("stress");
    compile(
        &s,
        "cc",
        &[source("tests/c/stress.c")],
        &exe,
        &["-std=gnu99"],
    );
    for (threads, seed) in [(2u32, 1u64), (3, 2), (4, 3), (4, 4)] {
        let (log, data) = (
            s.path(&format!("log{seed}")),
            s.path(&format!("data{seed}")),
        );
        rdsinit(&log, &data);
        let args = [
            threads.to_string(),
            seed.to_string(),
            "6".into(),
            "150".into(),
        ];
        let mut all: Vec<&Path> = vec![&log, &data];
        all.extend(args.iter().map(|a| Path::new(a.as_str())));
        let stdout = expect_success(&run(&exe, &all), "stress");
        assert!(stdout.contains("stress ok"), "{stdout}");
        heap_checks_clean(&log, &data);
    }
}

#[test]
fn example_program_counts_its_runs_across_restarts() {
    let s = Scratch::new("example");
    let exe = s.path("persistent_counter");
    compile(
        &s,
        "cc",
        &[source("examples/persistent_counter.c")],
        &exe,
        &[],
    );
    let (log, data) = (s.path("log"), s.path("data"));
    rdsinit(&log, &data);
    for n in 1..=3 {
        let stdout = expect_success(&run(&exe, &[&log, &data]), "persistent_counter");
        assert_eq!(stdout.trim(), format!("run {n}"));
    }
    heap_checks_clean(&log, &data);
}

/// `benches/so_commit.c` (the C half of the commit-cost comparison, run by hand through the
/// installed library: BENCHMARKS.md) still builds and runs: a few batches, on a scratch log.
#[test]
fn the_shared_library_commit_benchmark_builds_and_runs() {
    let s = Scratch::new("so_commit");
    let exe = s.path("so_commit");
    compile(&s, "cc", &[source("benches/so_commit.c")], &exe, &["-O2"]);
    let dir = s.path("run");
    std::fs::create_dir_all(&dir).unwrap();
    let stdout = expect_success(&output(Command::new(&exe).arg(&dir).arg("3")), "so_commit");
    // Every call's code is checked by the program itself (it exits non-zero on the first
    // failure); its one line is the median time, whatever it is.
    let median = stdout
        .trim()
        .strip_prefix("so no_flush: ")
        .and_then(|rest| rest.strip_suffix(" ns"))
        .and_then(|n| n.parse::<f64>().ok());
    assert!(median.is_some(), "unexpected output: {stdout:?}");
}

#[test]
fn rds_interface_calls_and_error_codes() {
    let s = Scratch::new("rds");
    let exe = s.path("rds_api");
    compile(
        &s,
        "cc",
        &[source("tests/c/rds_api.c")],
        &exe,
        &["-std=c99"],
    );
    let (log, data, trace) = (s.path("log"), s.path("data"), s.path("trace"));
    {
        let _mapping = MAPPING.lock().unwrap_or_else(|e| e.into_inner());
        rvm::Rvm::create_log(&log, 1 << 20).unwrap();
    }
    let stdout = expect_success(&run(&exe, &[&log, &data, &trace]), "rds_api");
    assert!(stdout.contains("rds api ok"), "{stdout}");
    assert!(stdout.contains("RDS statistics"), "{stdout}");
    let traced = std::fs::read_to_string(&trace).unwrap();
    assert!(traced.contains("hello 42"), "{traced}");
    assert!(traced.contains("rds_malloc: 100 bytes at 0x"), "{traced}");
    assert!(traced.contains("rds heap at 0x240000000000"), "{traced}");
    heap_checks_clean(&log, &data);
}

#[test]
fn program_built_against_classic_sonames_runs_on_ours_through_ld_library_path() {
    // Stand-ins for the classic libraries: only their sonames and symbol names matter to the
    // program linked against them.
    let s = Scratch::new("soname");
    let stub_dir = s.path("classic");
    std::fs::create_dir_all(&stub_dir).unwrap();
    let stub_c = s.path("stub.c");
    std::fs::write(
        &stub_c,
        "int rvm_initialize(const char *v, void *o) { (void)v; (void)o; return -1; }\n\
         char *rvm_return(int c) { (void)c; return 0; }\n\
         int rds_trace_off(void) { return -1; }\n\
         long rds_rvmsize;\n",
    )
    .unwrap();
    for (lib, soname) in [
        ("rvmlwp", "librvmlwp.so.1"),
        ("rdslwp", "librdslwp.so.1"),
        ("seglwp", "libseglwp.so.1"),
    ] {
        let out = output(
            Command::new("cc")
                .args(["-shared", "-fPIC", "-o"])
                .arg(stub_dir.join(format!("lib{lib}.so")))
                .arg(&stub_c)
                .arg(format!("-Wl,-soname,{soname}")),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let prog = s.path("prog.c");
    std::fs::write(
        &prog,
        "#include <stdio.h>\n#include <string.h>\n\
         int rvm_initialize(const char *, void *);\nchar *rvm_return(int);\n\
         int rds_trace_off(void);\nextern long rds_rvmsize;\n\
         int main(void) { int rc = rvm_initialize(\"old\", 0);\n\
         printf(\"%d %s %d %ld\\n\", rc, rvm_return(rc), rds_trace_off(), rds_rvmsize);\n\
         return 0; }\n",
    )
    .unwrap();
    let exe = s.path("prog");
    let out = output(
        Command::new("cc")
            .arg(&prog)
            .arg("-o")
            .arg(&exe)
            .arg("-L")
            .arg(&stub_dir)
            .args(["-lrvmlwp", "-lrdslwp", "-lseglwp"]),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = lib_dir(&s);
    let out = output(Command::new(&exe).env("LD_LIBRARY_PATH", &ours));
    let stdout = expect_success(&out, "prog");
    assert_eq!(stdout.trim(), "225 RVM_EVERSION_SKEW 0 0");
}

mod support {
    pub mod membarrier;
}
use support::membarrier::kernel_registers_membarrier;

/// The "tid calls" line of the statistics report a threaded program prints: the path its tid
/// calls took. Without `RVM_CAPI_NO_BIAS` (set for the run, or inherited from this test's
/// environment), the biased path where the kernel allows it, else the lock word for the
/// reason the library gives, so a run where `membarrier` is refused says so instead of
/// passing as a biased run.
fn expected_tid_path(unbiased: bool) -> &'static str {
    if unbiased || std::env::var_os("RVM_CAPI_NO_BIAS").is_some() {
        "tid calls: lock word (RVM_CAPI_NO_BIAS set)"
    } else if kernel_registers_membarrier() {
        "tid calls: biased (membarrier registered)"
    } else {
        "tid calls: lock word (membarrier refused)"
    }
}

/// Compile the threaded C program `tests/c/PROGRAM.c` and run it on a new log and segment in
/// `s` (with `RVM_CAPI_NO_BIAS` set if `unbiased`); it must succeed, print `ok`, and report
/// the tid path it took ([`expected_tid_path`]). Returns the log's path.
fn run_threaded(s: &Scratch, program: &str, unbiased: bool, ok: &str) -> PathBuf {
    let exe = s.path(program);
    compile(
        s,
        "cc",
        &[source(&format!("tests/c/{program}.c"))],
        &exe,
        &["-std=gnu99"],
    );
    let (log, data) = (
        s.path(&format!("{program}.log")),
        s.path(&format!("{program}.data")),
    );
    let out = if unbiased {
        // Every tid call takes the slot's lock word (the path used where `membarrier` is
        // missing).
        output(
            Command::new(&exe)
                .args([&log, &data])
                .env("RVM_CAPI_NO_BIAS", "1"),
        )
    } else {
        run(&exe, &[&log, &data])
    };
    let stdout = expect_success(&out, program);
    assert!(stdout.contains(ok), "{program}: {stdout}");
    let path = expected_tid_path(unbiased);
    assert!(
        stdout.contains(path),
        "{program}: expected {path:?}: {stdout}"
    );
    log
}

#[test]
fn terminate_waits_for_running_calls_and_refuses_open_transactions() {
    let s = Scratch::new("terminate");
    let log = run_threaded(&s, "terminate_race", false, "terminate race ok");
    // rvm_terminate closed the log (its lock is released): a new instance opens it.
    let _mapping = MAPPING.lock().unwrap_or_else(|e| e.into_inner());
    let rvm = rvm::Rvm::open(&log, rvm::Options::default()).unwrap();
    rvm.close().unwrap();
}

#[test]
fn one_tid_used_from_several_threads_at_once_commits_and_aborts_exactly() {
    let s = Scratch::new("sharedtid");
    run_threaded(&s, "shared_tid", false, "shared tid ok (134 commits)");
}

#[test]
fn a_tid_used_by_its_owner_and_by_copies_at_once_loses_no_range() {
    // The owner's calls take the biased fast path while other threads' calls on copies revoke
    // the bias mid-stream: a lost or torn range would show in the image after commit or abort.
    let s = Scratch::new("ownercopies");
    run_threaded(
        &s,
        "owner_and_copies",
        false,
        "owner and copies ok (233 commits)",
    );
}

#[test]
fn without_biased_locks_shared_tids_and_terminate_keep_their_rules() {
    // The fallback where `membarrier` is missing: begin marks its slot with a read-modify-write
    // and every call takes the lock word; the same programs must pass unchanged.
    let s = Scratch::new("unbiased");
    for (program, ok) in [
        ("owner_and_copies", "owner and copies ok (233 commits)"),
        ("shared_tid", "shared tid ok (134 commits)"),
        ("terminate_race", "terminate race ok"),
    ] {
        run_threaded(&s, program, true, ok);
    }
}

#[test]
fn start_recovery_and_shutdown_run_on_a_64k_thread_stack() {
    let s = Scratch::new("smallstack");
    let exe = s.path("small_stack");
    compile(
        &s,
        "cc",
        &[source("tests/c/small_stack.c")],
        &exe,
        &["-std=gnu99"],
    );
    let (log, data) = (s.path("log"), s.path("data"));
    rdsinit(&log, &data);
    expect_success(
        &run(&exe, &[&log, &data, "crash".as_ref()]),
        "small_stack crash",
    );
    let stdout = expect_success(
        &run(&exe, &[&log, &data, "recover".as_ref()]),
        "small_stack recover",
    );
    assert!(stdout.contains("small stack ok"), "{stdout}");
    heap_checks_clean(&log, &data);
}

/// `RVM_MAP_HUGE_PAGES`, the rvm-rs flag that asks `rvm_map` and `rvm_load_segment` for huge
/// pages: the C program reads the advice back from `/proc/self/smaps`, for a copied region, a
/// private one and a loaded segment, with the flag and without it.
#[test]
fn the_huge_pages_flag_advises_the_anonymous_memory_of_mapped_regions() {
    let s = Scratch::new("huge");
    let exe = s.path("huge_pages");
    compile(
        &s,
        "cc",
        &[source("tests/c/huge_pages.c")],
        &exe,
        &["-std=c99"],
    );
    for mode in ["copy", "private", "segment"] {
        let (log, data) = (
            s.path(&format!("log-{mode}")),
            s.path(&format!("data-{mode}")),
        );
        {
            let _mapping = MAPPING.lock().unwrap_or_else(|e| e.into_inner());
            rvm::Rvm::create_log(&log, 1 << 20).unwrap();
        }
        if mode != "segment" {
            // 4 MiB: a first page of data, then a hole (the segment mode makes its own file).
            let file = std::fs::File::create(&data).unwrap();
            let first: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
            std::io::Write::write_all(&mut &file, &first).unwrap();
            file.set_len(4 << 20).unwrap();
        }
        let out = run(&exe, &[&log, &data, mode.as_ref()]);
        let stdout = expect_success(&out, &format!("huge_pages {mode}"));
        // The program checks the advice only where the kernel takes it: it must agree with
        // this process about that, so the checks are not skipped where they should run.
        let checked = if kernel_takes_huge_page_advice() {
            "advice checked"
        } else {
            "the kernel takes no advice"
        };
        assert!(
            stdout.contains(&format!("huge pages {mode} ok ({checked})")),
            "{stdout}"
        );
    }
}

/// Whether this kernel accepts `madvise(MADV_HUGEPAGE)` (built with transparent huge pages).
fn kernel_takes_huge_page_advice() -> bool {
    // SAFETY: a fresh anonymous page of our own, advised and unmapped; nothing else uses it.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        let ok = libc::madvise(p, 4096, libc::MADV_HUGEPAGE) == 0;
        libc::munmap(p, 4096);
        ok
    }
}
