//! The `embargo` command line.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use embargo::{
    config::{ConfigError, Interface, Role, XdpMode},
    run::{self, RunError, RunOptions},
    status,
};

#[derive(Parser)]
#[command(
    name = "embargo",
    version,
    about = "Sanctions-aware egress firewall agent (XDP)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the policy, attach to the interfaces and enforce until SIGINT or SIGTERM.
    Run {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// NAME:ROLE[:MODE] (role inside|outside, mode auto|native|generic); adds to or
        /// overrides the config's interfaces. Repeatable.
        #[arg(long = "interface", short, value_parser = parse_interface)]
        interfaces: Vec<Interface>,
        /// Control socket `embargo status` talks to.
        #[arg(long, default_value = status::DEFAULT_SOCKET)]
        control_socket: PathBuf,
    },
    /// Show the running agent's interfaces, modes and per-entity counters.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Control socket of the running agent.
        #[arg(long, default_value = status::DEFAULT_SOCKET)]
        control_socket: PathBuf,
    },
}

fn parse_interface(s: &str) -> Result<Interface, String> {
    let mut parts = s.split(':');
    let name = parts
        .next()
        .filter(|n| !n.is_empty())
        .ok_or("expected NAME:ROLE")?;
    let role = match parts.next() {
        Some("inside") => Role::Inside,
        Some("outside") => Role::Outside,
        Some(r) => return Err(format!("role `{r}` must be `inside` or `outside`")),
        None => {
            return Err(format!(
                "`{s}` needs a role: {name}:inside or {name}:outside"
            ));
        }
    };
    let mode = match parts.next() {
        None | Some("auto") => XdpMode::Auto,
        Some("native") => XdpMode::Native,
        Some("generic") => XdpMode::Generic,
        Some(m) => return Err(format!("mode `{m}` must be auto, native or generic")),
    };
    if parts.next().is_some() {
        return Err(format!("`{s}`: expected NAME:ROLE[:MODE]"));
    }
    Ok(Interface {
        name: name.to_owned(),
        role,
        mode,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Run {
            config,
            interfaces,
            control_socket,
        } => {
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: starting the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run::run(RunOptions {
                config,
                interfaces,
                control_socket,
            })) {
                Ok(()) => ExitCode::SUCCESS,
                Err(RunError::Config(e)) => config_error(&e),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Status {
            json,
            control_socket,
        } => match status::query(&control_socket) {
            Ok(s) if json => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&s).expect("serializable")
                );
                ExitCode::SUCCESS
            }
            Ok(s) => {
                print!("{}", status::render(&s));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("error: {e}");
    eprintln!("the configuration was refused; nothing from it was applied");
    ExitCode::from(ConfigError::EXIT_CODE as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_flags_parse() {
        let i = parse_interface("eth0:outside:generic").unwrap();
        assert_eq!(
            (i.name.as_str(), i.role, i.mode),
            ("eth0", Role::Outside, XdpMode::Generic)
        );
        assert!(parse_interface("eth0").is_err());
        assert!(parse_interface("eth0:middle").is_err());
        assert!(parse_interface("eth0:inside:fast").is_err());
    }
}
