//! The `embargo` command line: parses the arguments ([`embargo::cli::args`]), runs the command
//! ([`embargo::cli::commands`]) and exits with its status ([`embargo::cli::exit`]). Nothing else
//! lives here.

use std::process::ExitCode;

use clap::Parser as _;
use embargo::cli::{
    args::{AuditCommand, Cli, Command, ImportCommand},
    commands,
    exit::Exit,
    import,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Under --json the command's errors become one JSON object on stderr, written at the end
    // with the exit status.
    embargo::cli::output::set_json(cli.command.json());
    let code = command(cli);
    // What is still buffered is written (or dropped, if the reader has gone) before the exit.
    embargo::cli::output::flush();
    embargo::cli::output::finish(code.code());
    code.into()
}

/// Runs one command; its exit status.
fn command(cli: Cli) -> Exit {
    if let Err(e) = embargo::observe::log::init(cli.log_format, cli.log_level.as_deref()) {
        eprintln!("embargo: {e}");
        return Exit::Usage;
    }
    match cli.command {
        Command::Run(args) => commands::run(args),
        Command::Audit {
            command: AuditCommand::Verify { log, json },
        } => commands::audit_verify(&log, json),
        Command::Detach {
            pin_dir,
            state_dir,
            control_socket,
            json,
        } => commands::detach(&pin_dir, &state_dir, &control_socket, json),
        Command::Check {
            config,
            json,
            expiring,
            strict,
        } => embargo::cli::check::check(&config, json, expiring, strict),
        Command::Fetch { config, json } => commands::fetch(&config, json),
        Command::Init { authority, dir } => embargo::cli::init::init(&authority, &dir),
        Command::Import {
            format: ImportCommand::List(format),
        } => import::list(format),
        Command::Import {
            format: ImportCommand::Indicators(format),
        } => import::indicators(format),
        Command::Plan {
            config,
            control_socket,
            limit,
            json,
        } => commands::plan(&config, &control_socket, limit, json),
        Command::Why {
            queries,
            config,
            json,
        } => commands::why(&queries, &config, json),
        Command::Export {
            format,
            entity,
            monitored,
            config,
            out,
        } => commands::export(format, entity, monitored, &config, out.as_deref()),
        Command::Report(args) => embargo::cli::report::report(&args),
        Command::Completion { shell } => commands::completion(shell),
        Command::Man => commands::man(),
        Command::Events {
            follow: _,
            entity,
            json,
            control_socket,
        } => commands::events_follow(&control_socket, entity.as_deref(), json),
        Command::Status {
            json,
            control_socket,
            watch: true,
            interval,
            count,
            ..
        } => commands::status_watch(json, &control_socket, interval, count),
        Command::Status {
            json,
            control_socket,
            verify,
            ..
        } => commands::status(json, &control_socket, verify),
    }
}
