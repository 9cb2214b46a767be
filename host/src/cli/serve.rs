//! `aer serve --config aer.toml`: the daemon. `--print-config` prints every setting
//! with its value (defaults for what the file leaves out) and exits.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::{EXIT_OK, Io};
use crate::config::ServeConfig;
use crate::daemon::Daemon;

/// Arguments of `aer serve`.
#[derive(Debug, Args)]
pub struct ServeCommand {
    /// The configuration file (TOML); without it, every setting takes its default.
    #[arg(long, short, env = "AER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Listen on this address instead of the configured one (port 0: any free port).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Use this data directory instead of the configured one.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: draining requests and flushing");
}

impl ServeCommand {
    /// Whether this run logs JSON (decided before logging starts).
    pub fn effective_config(&self) -> anyhow::Result<ServeConfig> {
        let mut config = match &self.config {
            Some(path) => ServeConfig::load(path)?,
            None => ServeConfig::default(),
        };
        if let Some(l) = self.listen {
            config.listen = l;
        }
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        Ok(config)
    }

    /// Run it.
    pub fn run(self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        let config = self.effective_config()?;
        if self.print_config {
            write!(io.out, "{}", config.to_toml())?;
            return Ok(EXIT_OK);
        }
        let admin = config.resolve_admin_token()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("aer-serve")
            .build()
            .context("cannot start the async runtime")?;
        // A cluster node seeds plugins' randomness with the cluster's secret.
        let secret = if config.cluster.enabled {
            Some(runtime.block_on(crate::cluster::random_secret(&config.cluster))?)
        } else {
            None
        };
        let daemon = Daemon::open_with(config.clone(), admin, secret)?;
        let served = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            let addr = listener.local_addr()?;
            writeln!(io.err, "aer: listening on http://{addr}")?;
            io.err.flush()?;
            tracing::info!(%addr, data_dir = %config.data_dir.display(), "serving");
            crate::api::serve(daemon, listener, shutdown_signal()).await?;
            anyhow::Ok(())
        });
        // A pipeline batch still running past the shutdown deadline (an effect waiting
        // out a rate limit, say) does not hold the exit: it runs again after a restart.
        runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        served?;
        Ok(EXIT_OK)
    }
}
