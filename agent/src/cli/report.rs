//! `embargo report --from DATE [--to DATE] [--format md|json|csv]`: reads the inputs
//! ([`crate::observe::report::gather`]), builds the report and prints it.
//!
//! Exit statuses: 0 with a report (counters unavailable or malformed events lines are said in
//! the report, not failures); 1 when the audit chain is broken or an input cannot be read (the
//! message names the file, and the line for a broken chain); 64 for a period that cannot be
//! read or is empty, or a configuration that is refused.

use super::{
    args::{ReportArgs, ReportFormat},
    commands,
    exit::Exit,
};
use crate::observe::{
    events,
    report::{self, Period, ReportError},
    status,
};

/// Runs `embargo report`; its exit status.
pub fn report(args: &ReportArgs) -> Exit {
    let period = match Period::parse(&args.from, args.to.as_deref(), crate::now()) {
        Ok(p) => p,
        Err(e) => {
            errln!("error: {e}");
            return Exit::Usage;
        }
    };
    let config = match crate::config::load(&args.config) {
        Ok(c) => c,
        Err(e) => return commands::config_error(&e),
    };
    let events_log = events::log_path(&config, args.events_log.as_deref());
    let socket = args.control_socket.clone();
    let inputs = report::gather(period, config, &args.audit_log, &events_log, || {
        status::query(&socket).map_err(|e| e.to_string())
    });
    let inputs = match inputs {
        Ok(i) => i,
        Err(e) => {
            errln!("error: {e}");
            return match e {
                ReportError::Period(_) => Exit::Usage,
                _ => Exit::Failure,
            };
        }
    };
    let r = report::build(&inputs);
    let text = match args.format {
        ReportFormat::Md => report::render_markdown(&r),
        ReportFormat::Json => report::render_json(&r),
        ReportFormat::Csv => report::render_csv(&r),
    };
    out!("{text}");
    if r.events.malformed > 0 {
        errln!(
            "warning: {} lines of the events files are not events; the report lists them",
            r.events.malformed
        );
    }
    Exit::Success
}
