//! Integration tests: the real `flint` binary serving on an ephemeral
//! loopback port, real components built from `functions/`.

mod backup;
mod bench;
mod cli;
mod cluster;
mod contract;
mod deploy;
mod dev;
mod doctor;
mod hostile;
mod http_p3;
mod instances;
mod lifecycle;
mod limits;
mod manifest;
mod metrics;
mod queues;
mod releases;
mod sandbox;
mod scaffold;
mod schedules;
mod security;
mod slow_clients;
mod support;
mod uploads;
mod wagi;
