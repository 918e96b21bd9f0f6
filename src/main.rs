//! `miochat`: dispatches to the server, the load generator or the client.
//!
//! Every failure ends as one line on stderr and a non-zero exit code, never a panic:
//! 2 for a TLS certificate or key that cannot be used, 1 otherwise.

use std::process::ExitCode;

use miochat::cli::{Command, ConfigCommand, TopLevel};
use miochat::logging;
use miochat::server::{Server, StartupError};

fn main() -> ExitCode {
    let args: TopLevel = argh::from_env();
    match args.command {
        Command::Serve(serve) => run_serve(&serve),
        Command::Bench(bench) => run_bench(&bench),
        Command::Connect(connect) => run_connect(&connect),
        Command::Backup(backup) => run_backup(&backup),
        Command::Config(config) => match config.command {
            ConfigCommand::MakeCert(args) => run_make_cert(&args),
        },
    }
}

fn run_make_cert(args: &miochat::certs::MakeCertArgs) -> ExitCode {
    match miochat::certs::make_cert(args) {
        Ok(made) => {
            print!("{}", made.instructions(args.days));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn run_backup(args: &miochat::cli::BackupArgs) -> ExitCode {
    let (dir, dest) = (
        std::path::Path::new(&args.data_dir),
        std::path::Path::new(&args.dest),
    );
    match miochat::server::store::backup(dir, dest) {
        Ok(()) => {
            println!("miochat: copied {} to {}", dir.display(), dest.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("backup: {e}")),
    }
}

fn run_connect(args: &miochat::cli::ConnectArgs) -> ExitCode {
    let options = match args.to_options() {
        Ok(options) => options,
        Err(msg) => return fail(&msg),
    };
    match miochat::client::run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

fn run_bench(args: &miochat::cli::BenchArgs) -> ExitCode {
    let (common, scenario) = match args.to_run() {
        Ok(run) => run,
        Err(msg) => return fail(&msg),
    };
    let servers = common.addrs_text();
    match miochat::bench::run(common, scenario) {
        Ok(report) => {
            if args.json {
                println!("{}", report.json());
            } else if args.csv {
                print!("{}", report.csv());
            } else {
                print!("{}", report.human());
            }
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => fail(&format!("bench against {servers}: {err}")),
    }
}

fn run_serve(args: &miochat::cli::ServeArgs) -> ExitCode {
    logging::init(logging::level(args.verbose, args.quiet));
    if let Some(mistake) = args.tls_mistake() {
        eprintln!("miochat: {mistake}");
        return ExitCode::from(2);
    }
    let config = match args.to_config() {
        Ok(config) => config,
        Err(msg) => return fail(&msg),
    };
    let server = match Server::start(config) {
        Ok(server) => server,
        // A TLS mistake (a missing or bad certificate or key) is a configuration the
        // operator must fix before anything can work: status 2, as for bad usage.
        Err(e @ StartupError::Tls(_)) => {
            eprintln!("miochat: {e}");
            return ExitCode::from(2);
        }
        Err(e) => return fail(&e.to_string()),
    };
    // Scripts and tests read the bound address from this first stdout line.
    println!("miochat listening on {}", server.local_addr());
    if let Some(irc) = server.irc_addr() {
        println!("miochat IRC listening on {irc}");
    }
    if let Some(addr) = server.tls_addr() {
        println!("miochat TLS listening on {addr}");
    }
    if let Some(addr) = server.irc_tls_addr() {
        println!("miochat IRC TLS listening on {addr}");
    }
    if let Some(addr) = server.http_addr() {
        println!("miochat web listening on {addr}");
    }
    server.join();
    ExitCode::SUCCESS
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("miochat: {msg}");
    ExitCode::FAILURE
}
