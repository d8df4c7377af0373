//! Which web origins may open a WebSocket: the appliance's own (its scheme
//! and port, under a name it answers to) and `APP_ALLOWED_ORIGINS` (the
//! desktop app's). A page from anywhere else is refused before the upgrade,
//! even if it holds a token, and so is a page served under a name the
//! appliance does not know (DNS rebinding).

use std::net::SocketAddr;

use crate::tls::Tls;
use crate::tls::names::{ServedNames, served_names};

pub struct OwnOrigins {
    scheme: &'static str,
    port: u16,
    hosts: Hosts,
    allowed: Vec<String>,
}

enum Hosts {
    /// Whatever the served certificate names (it can change on renewal or
    /// reload).
    Certificate(Tls),
    Fixed(ServedNames),
}

impl OwnOrigins {
    /// The origins of an appliance bound to `local` (the real port, even
    /// when the configuration asked for port 0).
    pub fn new(local: SocketAddr, tls: Option<&Tls>, allowed: Vec<String>) -> Self {
        let (scheme, hosts) = match tls {
            Some(tls) => ("https", Hosts::Certificate(tls.clone())),
            None => ("http", Hosts::Fixed(served_names(local, &[]))),
        };
        Self { scheme, port: local.port(), hosts, allowed }
    }

    /// Whether a request with this `Origin` header may upgrade. No header
    /// is a client that is not a browser (browsers always send one on a
    /// WebSocket), which no page can make it send on its behalf.
    pub fn admits(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        let Some(origin) = crate::config::normalize_origin(origin) else { return false };
        if self.allowed.contains(&origin) {
            return true;
        }
        let Some((scheme, authority)) = origin.split_once("://") else { return false };
        if scheme != self.scheme {
            return false;
        }
        let Some((host, port)) = split_authority(authority, scheme) else { return false };
        port == self.port
            && match &self.hosts {
                Hosts::Certificate(tls) => tls.names().covers(host),
                Hosts::Fixed(names) => names.covers(host),
            }
    }
}

/// `host[:port]` (IPv6 in brackets) with the scheme's default port.
fn split_authority<'a>(authority: &'a str, scheme: &str) -> Option<(&'a str, u16)> {
    let default = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(port) => Some((host, port.parse().ok()?)),
            None if after.is_empty() => Some((host, default)),
            None => None,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, port.parse().ok()?)),
        None => Some((authority, default)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_origins_and_configured_ones_are_admitted_nothing_else() {
        let origins = OwnOrigins::new("127.0.0.1:8080".parse().expect("addr"), None, vec!["tauri://localhost".into()]);
        for admitted in [
            None,
            Some("http://127.0.0.1:8080"),
            Some("http://localhost:8080"),
            Some("http://[::1]:8080"),
            Some("tauri://localhost"),
            Some("HTTP://LOCALHOST:8080/"),
        ] {
            assert!(origins.admits(admitted), "{admitted:?}");
        }
        for refused in [
            "http://evil.example:8080",
            "http://127.0.0.1:8081",
            "https://127.0.0.1:8080",
            "http://localhost",
            "null",
            "http://127.0.0.1:8080.evil.example",
            "http://user@127.0.0.1:8080",
            "tauri://localhost.evil",
        ] {
            assert!(!origins.admits(Some(refused)), "{refused}");
        }
    }
}
