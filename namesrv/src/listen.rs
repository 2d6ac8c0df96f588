//! Listening sockets for the servers (the name server here, the broker too).
//!
//! glommio's own `TcpListener::bind` sets SO_REUSEPORT and not SO_REUSEADDR. Two things go wrong
//! with that: a second process on the same port silently shares it (and takes half the
//! connections), and a restart right after a crash or kill fails with "address in use" while the
//! old connections sit in TIME_WAIT — for a minute, so systemd's `Restart=on-failure` would fail
//! over and over. These bind as Java's servers do: SO_REUSEADDR, one owner, backlog 1024.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};

use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections the kernel queues before `accept` (Java: `serverSocketBacklog` 1024).
const BACKLOG: i32 = 1024;

/// Binds and listens on `addr`; call from any thread, then hand the listener to its executor
/// with [`into_glommio`]. Port 0 picks a free port.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Gives a listener from [`bind`] to the calling glommio executor.
pub fn into_glommio(listener: std::net::TcpListener) -> glommio::net::TcpListener {
    let fd = listener.into_raw_fd();
    // SAFETY: `fd` is a bound, listening TCP socket that `into_raw_fd` just released; the
    // glommio listener becomes its only owner and closes it.
    #[allow(unsafe_code)]
    unsafe {
        glommio::net::TcpListener::from_raw_fd(fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_listener_on_the_same_port_is_refused() {
        let first = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = first.local_addr().expect("addr");
        let err = bind(addr).expect_err("the port is taken");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn the_port_is_bound_again_while_old_connections_are_in_time_wait() {
        let listener = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = std::net::TcpStream::connect(addr).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        // The server side closes first, as a killed server does: its end goes to TIME_WAIT.
        drop(accepted);
        drop(listener);
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(client);
        std::thread::sleep(std::time::Duration::from_millis(50));
        bind(addr).expect("rebinding right away");
    }
}
