//! The hand-off thread of one core: authentication checks (DNS lookups), shared greylisting
//! steps (cluster round trips), group-commit waits and the stop signal run on a small tokio
//! runtime beside the ring, so the ring thread never blocks and never polls a future.
//! Results come back through a queue and an eventfd the ring has a read posted on, so they
//! wake the ring like any other completion.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tempmx_store::StoreError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::LocalSet;

use crate::auth::{Authenticator, MessageCheck, SenderCheck};
use crate::greylist::{GreyVerdict, Greylist, SharedStep};

/// Which connection (slot and generation) a job belongs to.
pub(super) type Token = (u32, u32);

/// Work for the hand-off thread.
pub(super) enum Job {
    /// SPF for a MAIL FROM.
    Sender {
        /// The connection.
        token: Token,
        /// Client address.
        ip: IpAddr,
        /// EHLO name.
        helo: String,
        /// Reverse path.
        mail_from: String,
    },
    /// DKIM, ARC and DMARC of a message.
    Message {
        /// The connection.
        token: Token,
        /// The sender check of the transaction.
        sender: SenderCheck,
        /// The message.
        body: Vec<u8>,
    },
    /// A step on the shared greylisting state (one cluster round trip).
    Greylist {
        /// The connection.
        token: Token,
        /// The greylist whose shared state runs it.
        greylist: Arc<Greylist>,
        /// The step.
        step: SharedStep,
    },
    /// Wait (bounded) for the store's group commit.
    Commit {
        /// The connection.
        token: Token,
        /// The store's commit signal.
        done: oneshot::Receiver<Result<(), StoreError>>,
        /// How long the client is kept waiting at most.
        bound: Duration,
    },
}

/// A finished job, or the stop signal.
pub(super) enum Done {
    /// The SPF verdict.
    Sender(Token, SenderCheck),
    /// The message verdict.
    Message(Token, MessageCheck),
    /// The shared greylisting verdict.
    Greylist(Token, GreyVerdict),
    /// The commit's outcome (`None`: it did not complete within its bound).
    Commit(Token, Option<Result<(), StoreError>>),
    /// A check asked for with no authenticator on this core (the session goes on without).
    Skipped(Token),
    /// The ingress is stopping.
    Stop,
}

/// The ring side of the hand-off: submit jobs, take results.
pub(super) struct Checks {
    jobs: Option<mpsc::UnboundedSender<Job>>,
    done: Arc<Mutex<Vec<Done>>>,
    wake: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Checks {
    /// Starts the hand-off thread of core `core`; `auth` builds its authenticator there.
    pub(super) fn start(
        core: usize,
        stop: watch::Receiver<bool>,
        auth: impl FnOnce() -> io::Result<Option<Authenticator>> + Send + 'static,
    ) -> io::Result<Self> {
        // SAFETY: eventfd takes plain integers; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        let done = Arc::new(Mutex::new(Vec::new()));
        let (jobs, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let poster = Poster {
            done: Arc::clone(&done),
            wake: Arc::clone(&wake),
        };
        let thread = std::thread::Builder::new()
            .name(format!("tempmx-checks-{core}"))
            .spawn(move || serve(rx, stop, poster, auth, ready_tx))?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("hand-off thread died at start"))??;
        Ok(Self {
            jobs: Some(jobs),
            done,
            wake,
            thread: Some(thread),
        })
    }

    /// The eventfd the ring reads to learn that results are waiting.
    pub(super) fn wake_fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// Hands a job over (never blocks).
    pub(super) fn submit(&self, job: Job) {
        if let Some(jobs) = &self.jobs
            && jobs.send(job).is_err()
        {
            tracing::error!("hand-off thread gone; job dropped");
        }
    }

    /// Takes the results that arrived.
    pub(super) fn take(&self, into: &mut Vec<Done>) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        into.append(&mut done);
    }
}

impl Drop for Checks {
    fn drop(&mut self) {
        // Closing the job channel ends the thread once its running jobs are dropped.
        self.jobs.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("hand-off thread panicked");
        }
    }
}

/// Posts results and wakes the ring.
#[derive(Clone)]
struct Poster {
    done: Arc<Mutex<Vec<Done>>>,
    wake: Arc<OwnedFd>,
}

impl Poster {
    fn post(&self, done: Done) {
        self.done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(done);
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live array to our eventfd. A full counter (EAGAIN)
        // still leaves the eventfd readable, which is all the ring needs.
        unsafe {
            libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), one.len());
        }
    }
}

type ReadyTx = std::sync::mpsc::Sender<io::Result<()>>;

fn serve(
    mut jobs: mpsc::UnboundedReceiver<Job>,
    mut stop: watch::Receiver<bool>,
    poster: Poster,
    auth: impl FnOnce() -> io::Result<Option<Authenticator>>,
    ready: ReadyTx,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    LocalSet::new().block_on(&rt, async move {
        let auth = match auth() {
            Ok(auth) => std::rc::Rc::new(auth),
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        let stopper = poster.clone();
        tokio::task::spawn_local(async move {
            if stop.wait_for(|s| *s).await.is_ok() {
                stopper.post(Done::Stop);
            }
        });
        while let Some(job) = jobs.recv().await {
            let auth = std::rc::Rc::clone(&auth);
            let poster = poster.clone();
            tokio::task::spawn_local(async move {
                poster.post(run(job, auth.as_ref().as_ref()).await);
            });
        }
    });
}

async fn run(job: Job, auth: Option<&Authenticator>) -> Done {
    match job {
        Job::Sender {
            token,
            ip,
            helo,
            mail_from,
        } => match auth {
            Some(auth) => Done::Sender(token, auth.check_sender(ip, &helo, &mail_from).await),
            None => Done::Skipped(token),
        },
        Job::Message {
            token,
            sender,
            body,
        } => match auth {
            Some(auth) => Done::Message(token, auth.check_message(&sender, &body).await),
            None => Done::Skipped(token),
        },
        Job::Greylist {
            token,
            greylist,
            step,
        } => Done::Greylist(token, greylist.resolve(step).await),
        Job::Commit { token, done, bound } => {
            let outcome = match tokio::time::timeout(bound, done).await {
                Ok(Ok(result)) => Some(result),
                Ok(Err(_)) | Err(_) => None,
            };
            Done::Commit(token, outcome)
        }
    }
}
