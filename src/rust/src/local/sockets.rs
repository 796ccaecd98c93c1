//! The server's open sockets, so that stopping is immediate.

use std::os::fd::RawFd;

/// The server's open sockets (listener and connections), so that stopping
/// closes the port and every keep-alive connection at once, not whenever the
/// tasks that own them next run. A socket leaves the set under the lock, just
/// before it is closed, so a number is never shut down after reuse.
#[derive(Default)]
pub struct Sockets(std::sync::Mutex<std::collections::HashSet<RawFd>>);

impl Sockets {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<RawFd>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn open(&self, fd: RawFd) {
        self.lock().insert(fd);
    }
    /// Forget `fd` and drop `owner` (which closes it) under the lock.
    pub fn close<T>(&self, fd: RawFd, owner: T) {
        let mut g = self.lock();
        g.remove(&fd);
        drop(owner);
        drop(g);
    }
    /// Shut every socket down: new connections are refused, open ones end.
    pub fn shutdown_all(&self) {
        for fd in self.lock().iter() {
            // SAFETY: the fd is open (it leaves the set before it is closed).
            unsafe { libc::shutdown(*fd, libc::SHUT_RDWR) };
        }
    }
}
