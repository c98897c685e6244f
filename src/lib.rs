//! mcpsoc: a security operations console for Model Context Protocol deployments.
//!
//! One crate, three roles (gateway, monitor, console) on two shared mechanisms: the stream
//! publisher and subscriber ([`stream`]) over one contract ([`protocol`]) and one local event
//! store ([`store`]).

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod console;
pub mod demo;
pub mod export;
pub mod gateway;
pub mod monitor;
pub mod protocol;
pub mod replay;
pub mod runtime;
pub mod store;
pub mod stream;
pub mod token;
