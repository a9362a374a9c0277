//! A plain HTTP/1.1 client for the small listeners tests talk to (metrics of the worker and
//! scheduler binaries), so test crates need no HTTP client dependency.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
};

/// `GET path` on `addr`, asserting a 200 and returning the body (the listener closes the
/// connection after answering).
pub fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the listener");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}
