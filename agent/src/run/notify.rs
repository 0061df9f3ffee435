//! The service manager's view of the agent: systemd's notification protocol (`sd_notify`).
//!
//! With `Type=notify` systemd starts the units after this one, and reports the agent started,
//! only once it says `READY=1`, which it does when every interface is attached and the control
//! socket and `/metrics` are up. Around each reload it says `RELOADING=1` (with the monotonic
//! time, as `Type=notify-reload` requires) and `READY=1` again, and `STOPPING=1` when it exits.
//! `STATUS=` carries one line for `systemctl status`.
//!
//! Invariants: nothing is sent unless `NOTIFY_SOCKET` is set (a manual run, a container or the
//! tests' labs send nothing); a failed notification is logged, never an error of the agent;
//! the variable is left in the environment (child processes do not inherit a duty to notify,
//! the agent starts none).

use sd_notify::NotifyState;

/// Sends `states`, logging a failure.
fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "could not notify the service manager");
    }
}

/// Enforcing: every interface attached, the control socket and the metrics server up.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload begins (`trigger` says why).
pub fn reloading(trigger: &str) {
    let status = format!("reloading ({trigger})");
    let now = monotonic_usec();
    send(&[
        NotifyState::Reloading,
        NotifyState::MonotonicUsec(now),
        NotifyState::Status(&status),
    ]);
}

/// The agent is exiting.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// CLOCK_MONOTONIC in microseconds, as `MONOTONIC_USEC=` wants it.
fn monotonic_usec() -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000 + i128::from(ts.tv_nsec) / 1_000
}
