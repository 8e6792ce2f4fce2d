//! Confinement proof: a child process confines itself with [`keep_confine::confine`] and then,
//! as a compromised runtime would, tries what it was not granted with raw system calls. The
//! parent asserts that the kernel refused each one (and allowed what was granted).
//!
//! `harness = false`: the binary is its own parent and child (`proof child SCENARIO DIR`).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::Path;
use std::process::Command;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, scenario, dir] = args.as_slice()
        && mode == "child"
    {
        child(scenario, Path::new(dir));
        return;
    }
    without_network();
    with_network();
    println!("confinement proof: ok");
}

/// Runs `scenario` in a confined child; its results by name.
fn run_child(scenario: &str, dir: &Path) -> BTreeMap<String, String> {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["child", scenario])
        .arg(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the confined child failed: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn without_network() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["granted", "readonly", "outside"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        std::fs::write(dir.path().join(sub).join("file"), "content").unwrap();
    }
    let results = run_child("no-network", dir.path());
    let expect = |name: &str, value: &str| {
        assert_eq!(
            results.get(name).map(String::as_str),
            Some(value),
            "{name}: {results:#?}"
        );
    };
    expect("no-new-privs", "1");
    expect("core limit", "0");
    expect("read granted", "ok");
    expect("write granted", "ok");
    expect("read read-only", "ok");
    expect("thread", "ok");
    // Landlock: paths outside the grants.
    expect("read outside", "EACCES");
    expect("write read-only", "EACCES");
    expect("read /etc/shadow", "EACCES");
    expect("open /proc/self/mem", "EACCES");
    // seccomp: sockets without network, exec, ptrace, fork.
    expect("socket inet", "EPERM");
    expect("socket unix", "EPERM");
    // An unnamed Unix pair reaches nothing outside the process (tokio's signal driver makes
    // one); a pair of another family is refused.
    expect("socketpair unix", "ok");
    expect("socketpair inet", "EPERM");
    expect("execve", "EPERM");
    expect("ptrace attach parent", "EPERM");
    expect("ptrace traceme", "EPERM");
    expect("fork", "EPERM");
    assert!(
        results["report"].contains("landlock") && results["report"].contains("seccomp"),
        "{results:#?}"
    );
}

fn with_network() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("granted")).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std::fs::write(
        dir.path().join("port"),
        listener.local_addr().unwrap().port().to_string(),
    )
    .unwrap();
    let results = run_child("network", dir.path());
    assert_eq!(results["connect loopback"], "ok", "{results:#?}");
    assert_eq!(results["socket unix"], "EPERM", "{results:#?}");
    assert_eq!(results["execve"], "EPERM", "{results:#?}");
}

// ---------------------------------------------------------------- the confined child

fn child(scenario: &str, dir: &Path) {
    let network = scenario == "network";
    let port = std::fs::read_to_string(dir.join("port")).unwrap_or_default();
    let grants = keep_confine::Grants {
        read_write_dirs: vec![dir.join("granted")],
        read_only_dirs: vec![dir.join("readonly")],
        read_only_paths: Vec::new(),
        sockets: network,
        max_open_files: 256,
    };
    let report = keep_confine::confine(&grants);
    println!("report: {}", report.summary());
    assert!(
        report.is_complete(),
        "confinement incomplete: {}",
        report.summary()
    );

    let nnp = rustix::thread::no_new_privs().map(u8::from).unwrap_or(9);
    println!("no-new-privs: {nnp}");
    let core = rustix::process::getrlimit(rustix::process::Resource::Core);
    println!("core limit: {}", core.current.unwrap_or(u64::MAX));
    println!(
        "read granted: {}",
        open(&dir.join("granted/file"), libc::O_RDONLY)
    );
    println!(
        "write granted: {}",
        open(&dir.join("granted/new"), libc::O_WRONLY | libc::O_CREAT)
    );
    println!(
        "read read-only: {}",
        open(&dir.join("readonly/file"), libc::O_RDONLY)
    );
    println!(
        "write read-only: {}",
        open(&dir.join("readonly/file"), libc::O_WRONLY)
    );
    println!(
        "read outside: {}",
        open(&dir.join("outside/file"), libc::O_RDONLY)
    );
    println!(
        "read /etc/shadow: {}",
        open(Path::new("/etc/shadow"), libc::O_RDONLY)
    );
    println!(
        "open /proc/self/mem: {}",
        open(Path::new("/proc/self/mem"), libc::O_RDWR)
    );
    println!(
        "thread: {}",
        if std::thread::spawn(|| 7).join().ok() == Some(7) {
            "ok"
        } else {
            "failed"
        }
    );
    // SAFETY: raw system calls with valid arguments; results are only inspected.
    unsafe {
        println!(
            "socket inet: {}",
            result(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0))
        );
        println!(
            "socket unix: {}",
            result(libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0))
        );
        let mut pair = [0; 2];
        println!(
            "socketpair unix: {}",
            result(libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM,
                0,
                pair.as_mut_ptr()
            ))
        );
        println!(
            "socketpair inet: {}",
            result(libc::socketpair(
                libc::AF_INET,
                libc::SOCK_STREAM,
                0,
                pair.as_mut_ptr()
            ))
        );
        let program = CString::new("/bin/true").unwrap();
        let argv = [program.as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        println!(
            "execve: {}",
            result(libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()))
        );
        println!(
            "ptrace attach parent: {}",
            result(libc::ptrace(libc::PTRACE_ATTACH, libc::getppid(), 0, 0) as i32)
        );
        println!(
            "ptrace traceme: {}",
            result(libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) as i32)
        );
        let pid = libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0);
        if pid == 0 {
            libc::_exit(0);
        }
        println!("fork: {}", result(pid as i32));
    }
    if network {
        let connected = std::net::TcpStream::connect(format!("127.0.0.1:{port}"));
        println!(
            "connect loopback: {}",
            connected.map_or_else(|e| e.to_string(), |_| "ok".into())
        );
    }
}

fn open(path: &Path, flags: libc::c_int) -> String {
    let path = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; the descriptor is closed right away.
    unsafe {
        let fd = libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, 0o600);
        if fd >= 0 {
            libc::close(fd);
        }
        result(fd)
    }
}

fn result(value: libc::c_int) -> String {
    if value >= 0 {
        return "ok".into();
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EACCES) => "EACCES".into(),
        Some(libc::EPERM) => "EPERM".into(),
        Some(libc::ENOSYS) => "ENOSYS".into(),
        other => format!("errno {other:?}"),
    }
}
