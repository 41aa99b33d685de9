//! Process-level safety: no core dumps (secrets in memory), liveness of pids
//! named in lock files, and a Ctrl-C/SIGTERM flag that long loops poll so they
//! can clean up before exiting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;

use crate::error::{Error, Result};

static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Disables core dumps and ptrace attach by other users (`PR_SET_DUMPABLE 0`)
/// and sets the core size limit to zero.
pub fn harden() {
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
}

/// Signals after which the process exits at once (exit 130), whatever it is
/// doing: the way out of a wait that does not poll the flag (a stuck network
/// transfer).
const FORCE_QUIT_AFTER: usize = 3;

/// Installs SIGINT/SIGTERM/SIGHUP handlers. The first two signals only set
/// the interruption flag: the loops that poll it (the walk, every file read,
/// the extraction of every entry and chunk) stop within a chunk, and the way
/// out removes what the run made (temp archive, plaintext staging of a
/// restore or a live capture), so a second Ctrl-C never kills the process
/// halfway through that cleanup. A third exits at once; what that leaves
/// (a dot-temp archive, a restore's staging directory) is removed by the next
/// run, as after SIGKILL.
pub fn install_signal_handlers() {
    let flag = INTERRUPTED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    let sigs = [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ];
    for sig in sigs {
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    // counting happens on a thread of its own (the handlers above only set
    // the flag, which is all a signal handler may safely do)
    if let Ok(mut signals) = signal_hook::iterator::Signals::new(sigs) {
        let _ = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for (n, _) in signals.forever().enumerate() {
                    match n + 1 {
                        2 => eprintln!(
                            "secureclaw-backup: interrupted again; cleaning up (a third signal quits at once, and the next run removes what is left)"
                        ),
                        k if k >= FORCE_QUIT_AFTER => std::process::exit(130),
                        _ => {}
                    }
                }
            });
    }
}

/// Whether a termination signal arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// Returns an error if a termination signal arrived.
pub fn check_interrupted() -> Result<()> {
    if interrupted() {
        Err(
            Error::operational("interrupted by a signal; nothing was committed")
                .hint("run the command again"),
        )
    } else {
        Ok(())
    }
}

/// Whether a process with this pid exists (signal 0).
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    let exists = match rustix::process::Pid::from_raw(pid) {
        Some(p) => match rustix::process::test_kill_process(p) {
            Ok(()) => true,
            Err(e) => e == rustix::io::Errno::PERM,
        },
        None => false,
    };
    // a zombie has exited; only its parent has not reaped it yet
    exists && !is_zombie(pid)
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|st| st == "Z"))
        })
        .unwrap_or(false)
}
