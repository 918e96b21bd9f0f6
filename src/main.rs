//! `miochat`: dispatches to the server, the load generator or the client.
//!
//! Every failure ends as one line on stderr (one per problem, for a configuration)
//! and a non-zero exit code, never a panic: 2 for a TLS certificate or key that
//! cannot be used and for a configuration file `config check` or `config show`
//! finds wrong, 1 otherwise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miochat::cli::{Command, ConfigCommand, Invocation, ServeArgs};
use miochat::logging;
use miochat::server::{Server, StartupError};
use miochat::settings::{self, FileSource, render};

fn main() -> ExitCode {
    let args: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect();
    let Ok(args) = args else {
        return fail("the command line is not UTF-8");
    };
    let invocation = match miochat::cli::parse(&args) {
        Ok(invocation) => invocation,
        Err(early) if early.status.is_ok() => {
            println!("{}", early.output);
            return ExitCode::SUCCESS;
        }
        Err(early) => {
            eprintln!("{}\nRun miochat --help for more information.", early.output);
            return ExitCode::FAILURE;
        }
    };
    match invocation {
        Invocation::ShowConfig(serve) => run_show(&serve),
        Invocation::Run(Command::Serve(serve)) => run_serve(&serve),
        Invocation::Run(Command::Bench(bench)) => run_bench(&bench),
        Invocation::Run(Command::Connect(connect)) => run_connect(&connect),
        Invocation::Run(Command::Backup(backup)) => run_backup(&backup),
        Invocation::Run(Command::Config(config)) => run_config(&config.command),
    }
}

fn run_config(command: &ConfigCommand) -> ExitCode {
    match command {
        ConfigCommand::MakeCert(args) => run_make_cert(args),
        ConfigCommand::Example(_) => match render::example() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        ConfigCommand::Check(check) => match settings::check(Path::new(&check.path)) {
            Ok(_) => {
                println!("{}: OK", check.path);
                ExitCode::SUCCESS
            }
            Err(failure) => {
                for line in &failure.lines {
                    eprintln!("{line}");
                }
                ExitCode::from(2)
            }
        },
        // `main` hands `config show` its flags directly (see `cli::parse`).
        ConfigCommand::Show(_) => fail("config show: this command line was not understood"),
        ConfigCommand::HashPassword(_) => match settings::password::run() {
            Ok(hash) => {
                println!("{hash}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("hash-password: {e}")),
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

/// `config show [--config PATH] [flags]`: what `serve` would run with.
fn run_show(args: &ServeArgs) -> ExitCode {
    let path = args.config.as_deref().map(Path::new);
    let shown = settings::load(path, &args.overlay()).map(|loaded| render::show(&loaded.effective));
    match shown {
        Ok(Ok(text)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => fail(&e),
        Err(failure) => {
            for line in &failure.lines {
                eprintln!("miochat: {line}");
            }
            ExitCode::from(2)
        }
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

fn run_serve(args: &ServeArgs) -> ExitCode {
    if let Some(mistake) = args.tls_mistake() {
        eprintln!("miochat: {mistake}");
        return ExitCode::from(2);
    }
    let (flags, path) = (args.overlay(), args.config.as_deref().map(PathBuf::from));
    let loaded = match settings::load(path.as_deref(), &flags) {
        Ok(loaded) => loaded,
        Err(failure) => {
            for line in &failure.lines {
                eprintln!("miochat: {line}");
            }
            return ExitCode::from(if failure.tls { 2 } else { 1 });
        }
    };
    if let Err(e) = logging::install(&loaded.log) {
        return fail(&e);
    }
    // A reload (SIGHUP, /rehash) reads the same file under the same flags.
    let source = FileSource::new(path, flags, &loaded);
    let server = match Server::start_with_source(loaded.server, Some(Box::new(source))) {
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
