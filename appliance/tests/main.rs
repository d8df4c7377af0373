//! rap-appliance integration tests: real servers on 127.0.0.1:0, real HTTP
//! clients, real SQLite files, and the real binary where the process
//! boundary is the thing under test.

mod acceptance;
mod access;
mod auth;
mod binary;
mod encoding;
mod envelope;
mod files;
mod gateway;
mod graphics;
mod installation;
mod lan;
mod picture;
mod rdp;
mod rdp_test_server;
mod resources;
mod sessions;
mod support;
mod tenancy;
mod tidy;
