//! One OS thread per core, each with its own loop (an io_uring completion loop, or a tokio
//! current-thread runtime on epoll).

use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::task::LocalSet;

use super::buffers::BufferPool;
use super::core::{Core, CoreParts, build_authenticator, run as run_core};
use super::epoll::{self, EpollListener};
use super::uring;
use crate::config::{Backend, IngressConfig};

/// What a core thread reports once its runtime and listener are up (or failed).
pub(crate) type Ready = (usize, io::Result<()>);

/// Resolves `Auto` to the backend that works here; `Uring` fails if the ring cannot be set up.
pub(crate) fn select_backend(wanted: Backend) -> io::Result<Backend> {
    match wanted {
        Backend::Epoll => Ok(Backend::Epoll),
        Backend::Uring => uring::probe().map(|()| Backend::Uring),
        Backend::Auto => match uring::probe() {
            Ok(()) => Ok(Backend::Uring),
            Err(e) => {
                tracing::info!(error = %e, "io_uring unavailable, using epoll");
                Ok(Backend::Epoll)
            }
        },
    }
}

/// Starts the thread of one core; it reports on `ready` before it serves.
pub(crate) fn spawn_core(
    backend: Backend,
    config: IngressConfig,
    parts: CoreParts,
    ready: mpsc::Sender<Ready>,
) -> io::Result<JoinHandle<()>> {
    let id = parts.id;
    std::thread::Builder::new()
        .name(format!("tempmx-ingress-{id}"))
        .spawn(move || {
            if config.pin_threads {
                pin_to_cpu(id);
            }
            // The sender is dropped as soon as the core reports, so a core thread that dies
            // before reporting (even by panic) ends start()'s wait instead of hanging it.
            let mut ready = Some(ready);
            let result = match backend {
                Backend::Epoll => run_epoll(&config, parts, &mut ready),
                _ => uring::run(&config, parts, &mut ready),
            };
            if let (Err(e), Some(ready)) = (result, ready) {
                // The receiver is gone only if start() already gave up; nothing left to tell.
                let _ = ready.send((id, Err(e)));
            }
        })
}

fn run_epoll(
    config: &IngressConfig,
    parts: CoreParts,
    ready: &mut Option<mpsc::Sender<Ready>>,
) -> io::Result<()> {
    let rt = epoll::runtime()?;
    LocalSet::new().block_on(&rt, async {
        let auth = build_authenticator(config, Arc::clone(&parts.auth_counters))?;
        let (core, bound, stop) = Core::new(config, parts, auth)?;
        let core = Rc::new(core);
        // Only the epoll backend reads into a pool; an io_uring core's receives take the
        // buffer ring's buffers.
        let buffers = Rc::new(BufferPool::new(
            config.read_buffer_bytes,
            config.read_buffers_per_core,
        ));
        let listener = EpollListener::new(bound.listener)?;
        report_ready(ready, core.id);
        run_core(core, buffers, listener, bound.stopper, stop).await;
        Ok(())
    })
}

/// Pins the calling thread to CPU `core % available`; a failure is logged, not fatal.
fn pin_to_cpu(core: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = core % cpus;
    // SAFETY: cpu_set_t is plain data for which all-zero is the empty set; CPU_SET writes
    // inside it (cpu < available_parallelism ≤ CPU_SETSIZE), and sched_setaffinity only
    // reads `size_of::<cpu_set_t>()` bytes of it for the calling thread (pid 0).
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        tracing::warn!(core, cpu, error = %io::Error::last_os_error(), "cannot pin ingress thread");
    }
}

/// Tells start() that this core serves (once).
pub(crate) fn report_ready(ready: &mut Option<mpsc::Sender<Ready>>, core: usize) {
    if let Some(ready) = ready.take() {
        let _ = ready.send((core, Ok(())));
    }
}
