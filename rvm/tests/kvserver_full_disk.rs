//! The example server on a full file system (issue 12, item 2), run as a real process: it
//! used to die of SIGBUS when truncation wrote its sparse data file through a shared mapping.
//! Now a full disk gives an error answer naming the file, the process exits normally, and
//! after space is freed a restarted server has every acknowledged put.
//!
//! The file system is a small ext4 image on a loop device, built and mounted by the test (as
//! root, as CI runs): ext4, like other disk file systems, maps holes of a sparse file without
//! allocating, so the only writes that need space are the library's own `pwrite`s. (On tmpfs a
//! page fault over a hole of a full file system allocates and raises SIGBUS in the mapping
//! itself; `full_disk.rs` covers the library's write paths there.)

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

const ENOSPC: i32 = 28;

mod support;

/// A 48 MiB ext4 file system in an image file, loop-mounted; unmounted (and the image
/// removed) when dropped, also while a failing test unwinds.
struct Ext4 {
    dir: PathBuf,
    mount: PathBuf,
}

impl Ext4 {
    fn mount() -> Ext4 {
        let dir = std::env::temp_dir().join(format!("rvm-kv-full-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mount = dir.join("m");
        std::fs::create_dir_all(&mount).unwrap();
        let image = dir.join("image");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(48 << 20)
            .unwrap();
        let fs = Ext4 { dir, mount };
        let run = |program: &str, args: &[&std::ffi::OsStr]| {
            let status = Command::new(program)
                .args(args)
                .stdout(Stdio::null())
                .status()
                .unwrap_or_else(|e| panic!("run {program}: {e}"));
            assert!(
                status.success(),
                "{program} {args:?} failed ({status}); this test needs root, mkfs.ext4 and loop devices"
            );
        };
        run(
            "mkfs.ext4",
            &["-q".as_ref(), "-F".as_ref(), image.as_os_str()],
        );
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                image.as_os_str(),
                fs.mount.as_os_str(),
            ],
        );
        fs
    }

    /// Write a file until the file system is full.
    fn fill(&self) -> PathBuf {
        let path = self.mount.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        for size in [1 << 20, 4096] {
            let block = vec![0x55u8; size];
            loop {
                match file.write(&block) {
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(ENOSPC) => break,
                    Err(e) => panic!("filling {}: {e}", path.display()),
                }
            }
        }
        path
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Server {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Server {
    fn start(binary: &Path, dir: &Path) -> Server {
        let mut child = Command::new(binary)
            .args(["--heap-bytes", "256M", "--log-bytes", "4M"])
            .arg(dir.join("log"))
            .arg(dir.join("data"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kvserver");
        let input = child.stdin.take().expect("stdin");
        let output = BufReader::new(child.stdout.take().expect("stdout"));
        Server {
            child,
            input,
            output,
        }
    }

    fn ask(&mut self, line: &str) -> String {
        writeln!(self.input, "{line}").expect("kvserver is gone");
        self.input.flush().expect("kvserver is gone");
        let mut answer = String::new();
        let n = self.output.read_line(&mut answer).unwrap();
        assert!(n > 0, "kvserver died answering {line:?}");
        answer.trim_end_matches('\n').to_string()
    }

    /// End input and wait; the exit must be normal (no signal).
    fn finish(self) {
        let Server {
            mut child, input, ..
        } = self;
        drop(input);
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), None, "kvserver was killed by a signal");
        assert!(status.success(), "kvserver exited with {status}");
    }
}

#[test]
fn kvserver_on_a_full_disk_answers_an_error_and_loses_no_put() {
    let binary = support::example("kvserver");
    let fs = Ext4::mount();
    let mut server = Server::start(&binary, &fs.mount);
    assert_eq!(server.ask("put first value"), "ok");
    let filler = fs.fill();
    // Every put touches new heap pages; the 4 MB log fills and is truncated into the sparse
    // data file, which now has no room.
    let value = "v".repeat(2000);
    let mut acknowledged = vec![("first".to_string(), "value".to_string())];
    let error = loop {
        let key = format!("k{}", acknowledged.len());
        let value = format!("{value}{}", acknowledged.len());
        let answer = server.ask(&format!("put {key} {value}"));
        if answer != "ok" {
            break answer;
        }
        acknowledged.push((key, value));
        assert!(
            acknowledged.len() < 50_000,
            "the full disk never stopped the puts"
        );
    };
    assert!(
        error.starts_with("error:")
            && error.contains("No space left on device")
            && error.contains(&fs.mount.join("data").display().to_string()),
        "expected an ENOSPC error naming the data file, got {error:?}"
    );
    server.finish();

    std::fs::remove_file(filler).unwrap();
    let mut server = Server::start(&binary, &fs.mount);
    for (key, value) in &acknowledged {
        assert!(
            server.ask(&format!("get {key}")) == *value,
            "acknowledged put {key} was lost"
        );
    }
    assert_eq!(server.ask("check"), "ok");
    server.finish();
}
